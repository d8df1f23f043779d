"""What a subscriber receives: change events, and the feed's own messages (resync, ping)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from service.core.validation import Timestamp
from service.db.models import ImportStatus, OnConflict
from service.developers.schemas import Developer

Op = Literal[
    "created",
    "updated",
    "deleted",
    "bulk",
    "import.queued",
    "import.running",
    "import.succeeded",
    "import.failed",
    "import.cancelled",
]


class ImportJobSummary(msgspec.Struct, frozen=True):
    """A background import's state, as the change feed's `import.*` events carry it; `GET /api/imports/{id}`
    answers the whole job (ImportJob)."""

    id: int
    status: ImportStatus
    on_conflict: OnConflict
    rows_total: int | None
    rows_done: int
    created: int | None
    updated: int | None
    skipped: int | None
    submitted_by: int | None


class BulkSummary(msgspec.Struct, frozen=True):
    """What one statement of bulk work did: an import chunk, a batch update, a bulk delete."""

    operation: Literal["created", "updated", "deleted"]
    count: int
    first_id: int
    last_id: int
    ids: list[int] | None  # every id, in order, when there are at most 1,000; else only the range
    specialties: list[str] | None  # every specialty touched, when there are at most 100; else null: any


class EventDeveloper(Developer, frozen=True):
    """A developer as a write left it, with the `etag` `GET /api/developers/{id}` answered for that version (null
    for an event recorded before developers had versions): a copy kept fresh by the feed can send it as `If-Match`."""

    etag: Annotated[str | None, msgspec.Meta(examples=['"42.3"'])]


class Event(msgspec.Struct, frozen=True, omit_defaults=True):
    """One committed change. `id` is its cursor: pass it as `after` (or SSE's Last-Event-ID) to resume after it.

    A single-row write carries the developer (null when deleted), its id and specialty; bulk work carries a
    summary in `bulk` and nulls in the single-row fields; an import job's status change (`import.*`) carries
    the job's summary in `job` (every specialty filter lets these through).
    """

    id: Annotated[str, msgspec.Meta(examples=["6266-6"])]
    op: Op
    developer: EventDeveloper | None
    developer_id: int | None
    specialty: str | None
    at: Timestamp
    bulk: BulkSummary | None
    job: ImportJobSummary | None = None  # left out of developer events (the only field with a default)


class Resync(msgspec.Struct, frozen=True, tag="resync", tag_field="op"):
    """The subscriber fell too far behind and the stream ends: resume with `after`, the last event it was sent
    (null: none yet; then re-list), on a new connection."""

    after: str | None
    detail: str


class Ping(msgspec.Struct, frozen=True, tag="ping", tag_field="op", omit_defaults=True):
    """A WebSocket keepalive on an idle stream (SSE sends a comment line instead). `after`, when present: events
    this subscriber is not shown (another account's import jobs, other specialties) went by, and it has been sent
    every event up to this cursor that it is shown; resume after it."""

    after: str | None = None


class FeedTicket(msgspec.Struct, frozen=True):
    """A ticket for the change feed (`?ticket=` on its SSE and WebSocket routes), good for `expires_in` seconds."""

    ticket: str
    expires_in: Annotated[int, msgspec.Meta(examples=[30])]
