"""Reading the outbox: events in (xid, id) order, served only once no earlier event can still appear.

Why not a plain sequence: ids (and timestamps) are taken when a row is written, but rows become visible when their
transaction commits, and transactions commit in any order. A reader that has served id 11 can later see id 10
committed by a slower transaction and, following its cursor, skip it for ever. Here a reader serves only events of
transactions whose xid is below its snapshot's xmin: every such transaction has finished, so each of its events
is either visible now or never will be. An event served later always has an xid at or above that xmin, so
(xid, id) cursors never skip one. The price: an event waits while any transaction that began writing before it is
still open, however unrelated; the feed polls briefly while such events are pending.

A subscriber is shown what its audience may see (service.developers.events.stored): replays and counts apply the
same rule in SQL as the feed does in process (`StoredEvent.shown_to`).

Each function takes an asyncpg connection and makes one round trip.
"""

from __future__ import annotations

from typing import cast

import asyncpg

from service.db.consistency import NOTHING, Need, fetch_needing
from service.developers.events.cursor import Cursor
from service.developers.events.stored import Audience, Row, StoredEvent, stored_event

__all__ = ["Audience", "StoredEvent", "count_between", "horizon", "latest", "pending", "read", "read_between"]

# The text forms are renamed: an output column named `xid` would be what ORDER BY xid sorts, as text, and
# "139119" sorts before "6260".
_COLUMNS = (
    "xid::text AS xid_text, id, op, developer_id, specialty, specialties, developer::text AS developer_json, "
    "bulk::text AS bulk_json, job::text AS job_json, at"
)
_SERVABLE = "xid < pg_snapshot_xmin(pg_current_snapshot())"
_AFTER = "(xid, id) > ($1::text::xid8, $2)"

_READ = f"SELECT {_COLUMNS} FROM developer_events WHERE {_AFTER} AND {_SERVABLE} ORDER BY xid, id LIMIT $3"  # noqa: S608
# Events in (after, upto] shown to a subscriber with the `specialty` filter $5 and the viewer $6.
_SHOWN_BETWEEN = (
    f"{_AFTER} AND (xid, id) <= ($3::text::xid8, $4) "
    "AND (specialties IS NULL OR $5::text IS NULL OR $5 = ANY(specialties)) "
    "AND (job IS NULL OR $6::bigint IS NULL OR (job->>'submitted_by')::bigint = $6)"
)
_READ_FOR = f"SELECT {_COLUMNS} FROM developer_events WHERE {_SHOWN_BETWEEN} ORDER BY xid, id LIMIT $7"  # noqa: S608
_COUNT = f"SELECT count(*) FROM (SELECT 1 FROM developer_events WHERE {_SHOWN_BETWEEN} LIMIT $7) AS behind"  # noqa: S608
_PENDING = f"SELECT EXISTS (SELECT 1 FROM developer_events WHERE {_AFTER} AND NOT {_SERVABLE})"  # noqa: S608
_LATEST = (
    f"SELECT xid::text AS xid_text, id FROM developer_events WHERE {_SERVABLE} "  # noqa: S608
    "ORDER BY xid DESC, id DESC LIMIT 1"
)
_HORIZON = "SELECT xid::text, id FROM developer_events_horizon"


def _stored(row: asyncpg.Record) -> StoredEvent:
    xid, event_id, *rest = row
    return stored_event((int(xid), event_id), Row(*rest))


async def read(connection: asyncpg.Connection, after: Cursor, limit: int) -> list[StoredEvent]:
    """Up to `limit` servable events after `after`, in order."""
    rows = await connection.fetch(_READ, str(after[0]), after[1], limit)
    return [_stored(row) for row in rows]


async def read_between(
    connection: asyncpg.Connection,
    after: Cursor,
    upto: Cursor,
    audience: Audience,
    limit: int,
    need: Need = NOTHING,
) -> list[StoredEvent]:
    """Up to `limit` events in (after, upto] shown to the subscriber `audience` (its specialty filter and viewer):
    a replay, below a cursor the feed has already served (so all of them are servable). With a `need` (on a
    standby), only if the snapshot has every event up to `upto` (service.db.consistency.Behind otherwise)."""
    args = (str(after[0]), after[1], str(upto[0]), upto[1], *audience, limit)
    rows = await fetch_needing(connection, need, _READ_FOR, args, order="xid_text::xid8, id")
    return [_stored(row) for row in rows]


async def count_between(
    connection: asyncpg.Connection, after: Cursor, upto: Cursor, audience: Audience, bound: int, need: Need = NOTHING
) -> int:
    """How many events in (after, upto] are shown to the subscriber `audience`, counting no further than `bound`:
    how far behind it is (events it is not shown cannot put it behind). `need` as for `read_between`."""
    args = (str(after[0]), after[1], str(upto[0]), upto[1], *audience, bound)
    rows = await fetch_needing(connection, need, _COUNT, args)
    return cast(int, rows[0][0])


async def pending(connection: asyncpg.Connection, after: Cursor) -> bool:
    """Whether events after `after` are committed but held back by an older transaction still open."""
    return bool(await connection.fetchval(_PENDING, str(after[0]), after[1]))


async def latest(connection: asyncpg.Connection) -> Cursor:
    """The cursor of the newest servable event (START if there is none): where a new feed begins."""
    row = await connection.fetchrow(_LATEST)
    return (0, 0) if row is None else (int(row[0]), row[1])


async def horizon(connection: asyncpg.Connection) -> Cursor:
    """The newest event retention has deleted (START if none): a cursor below it may have missed events."""
    row = await connection.fetchrow(_HORIZON)
    return (0, 0) if row is None else (int(row[0]), row[1])
