"""An event as the feed handles it, whichever server's outbox it was read from: its cursor, the specialties a
filter matches, the Event, and its JSON encoded once for every subscriber.

Both servers' triggers record the developer as a JSON object of its row with its version (PostgreSQL's to_jsonb,
MariaDB's JSON_OBJECT with RFC 3339 UTC timestamps): `stored_event` turns either into the same Event, with the
timestamps in UTC as the API answers them.

Who sees what: a subscriber is shown the events that match its `specialty` filter, if any, and that its `viewer`
may read: an import job's events (`import.*`) only to the job's submitter and to admins (`viewer` None), the rule
of `GET /api/imports/{id}`; every other event to everyone. Each server's replays and counts apply the same rule in
SQL (service.developers.events.store, service.developers.events.mariadb_store).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import msgspec

from service.developers.etags import developer_etag
from service.developers.events.cursor import Cursor, format_cursor
from service.developers.events.schemas import BulkSummary, Event, EventDeveloper, ImportJobSummary
from service.developers.schemas import Developer


class _Written(Developer, frozen=True):
    """A developer as a trigger recorded it: with its version (null in events older than migration 0006)."""

    version: int | None = None


_DEVELOPER = msgspec.json.Decoder(_Written)
_BULK = msgspec.json.Decoder(BulkSummary)
_JOB = msgspec.json.Decoder(ImportJobSummary)
_ENCODER = msgspec.json.Encoder()


class Audience(NamedTuple):
    """Who a subscriber is: its specialty filter (None: none), and whose import jobs it may read: an account's id,
    or None for an admin, who may read every job."""

    specialty: str | None
    viewer: int | None


class StoredEvent(msgspec.Struct, frozen=True):
    """An event as the feed handles it: its cursor, the specialties a filter matches (None: any), its JSON."""

    cursor: Cursor
    specialties: frozenset[str] | None
    event: Event
    json: bytes

    def shown_to(self, audience: Audience) -> bool:
        job = self.event.job
        if job is not None and audience.viewer is not None and job.submitted_by != audience.viewer:
            return False
        return audience.specialty is None or self.specialties is None or audience.specialty in self.specialties


class Row(NamedTuple):
    """An outbox row as either server's reader fetches it (the JSON columns as text)."""

    op: str
    developer_id: int | None
    specialty: str | None
    specialties: list[str] | None
    developer: str | bytes | None
    bulk: str | bytes | None
    job: str | bytes | None
    at: datetime


def _developer(text: str | bytes) -> EventDeveloper:
    """The developer a trigger wrote, with its timestamps in UTC (PostgreSQL's carry the writer's session time
    zone) and the ETag of its version."""
    row = _DEVELOPER.decode(text)
    return EventDeveloper(
        id=row.id,
        name=row.name,
        email=row.email,
        specialty=row.specialty,
        created_at=row.created_at.astimezone(UTC),
        updated_at=row.updated_at.astimezone(UTC),
        etag=None if row.version is None else developer_etag(row.id, row.version),
    )


def stored_event(cursor: Cursor, row: Row) -> StoredEvent:
    at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=UTC)  # MariaDB's DATETIME holds UTC
    event = Event(
        id=format_cursor(cursor),
        op=row.op,  # type: ignore[arg-type]  # the table's check constraint admits only Op's values
        developer=None if row.developer is None else _developer(row.developer),
        developer_id=row.developer_id,
        specialty=row.specialty,
        at=at,
        bulk=None if row.bulk is None else _BULK.decode(row.bulk),
        job=None if row.job is None else _JOB.decode(row.job),
    )
    specialties = None if row.specialties is None else frozenset(row.specialties)
    return StoredEvent(cursor, specialties, event, _ENCODER.encode(event))
