"""Reading the outbox on MariaDB (and MySQL 8): events in the order they were stamped, which is commit order.

Why a sequencer: ids are taken when a row is written, but rows become visible when their transaction commits, and
transactions commit in any order. A reader that has served id 11 can later see id 10 committed by a slower
transaction and, following its cursor, skip it for ever. MariaDB has no snapshot xmin to wait behind (PostgreSQL's
rule, service.developers.events.store), so the triggers (migration 0007) leave `seq` NULL and the sequencer stamps
committed events, in one short transaction at a time:

1. `SELECT ... FROM developer_events_sequence FOR UPDATE SKIP LOCKED`: one sequencer at a time, across all
   processes (a process that finds it locked leaves the stamping to the one that holds it, and reads on);
2. `SELECT id ... WHERE seq IS NULL ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED`: a row whose writer has not
   committed is locked by its insert and passed over; every committed unstamped row is taken;
3. the rows taken get seq = last + 1, last + 2, ... in id order; the sequence row keeps the last; COMMIT.

The no-gap rule: an event is read only once stamped, readers follow (seq, id), and an event is stamped only after
its transaction committed, by a sequencer that began after every earlier stamp had committed (the row lock of 1).
So an event that commits after a reader passed (s, i) is stamped above s: no cursor ever passes an event that can
still appear. Unlike PostgreSQL's rule, an open transaction holds back only its own events. Events are served in
commit order (more exactly: the order the sequencer found them committed), so ids may go down in the feed.

The transactions here run READ COMMITTED (every connection of the feed and the pool is): no gap locks, so the
sequencer never holds up a writer inserting events. MariaDB uses no index for row-value comparisons: keysets are
spelled `seq > ? OR (seq = ? AND id > ?)`. Every function takes an asyncmy connection; reads are one round trip.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

import asyncmy

from service.developers.events.cursor import START, Cursor
from service.developers.events.stored import Audience, Row, StoredEvent, stored_event

_COLUMNS = "seq, id, op, developer_id, specialty, specialties, developer, bulk, job, at"
_AFTER = "(seq > %s OR (seq = %s AND id > %s))"
_UPTO = "(seq < %s OR (seq = %s AND id <= %s))"
_SHOWN = (
    "(specialties IS NULL OR %s IS NULL OR JSON_CONTAINS(specialties, JSON_QUOTE(%s))) "
    "AND (job IS NULL OR %s IS NULL OR JSON_VALUE(job, '$.submitted_by') = %s)"
)
_READ = f"SELECT {_COLUMNS} FROM developer_events WHERE {_AFTER} ORDER BY seq, id LIMIT %s"  # noqa: S608
_READ_FOR = f"SELECT {_COLUMNS} FROM developer_events WHERE {_AFTER} AND {_UPTO} AND {_SHOWN} ORDER BY seq, id LIMIT %s"  # noqa: S608
_COUNT = f"SELECT count(*) FROM (SELECT 1 FROM developer_events WHERE {_AFTER} AND {_UPTO} AND {_SHOWN} LIMIT %s) AS b"  # noqa: S608
_LATEST = "SELECT seq, id FROM developer_events WHERE seq IS NOT NULL ORDER BY seq DESC, id DESC LIMIT 1"
_HORIZON = "SELECT seq, id FROM developer_events_horizon"
# What a poll asks first, in one round trip: the last stamp, and whether any event waits for one.
_STATE = (
    "SELECT (SELECT seq FROM developer_events_sequence WHERE one), "
    "EXISTS (SELECT 1 FROM developer_events WHERE seq IS NULL)"
)
_LOCK_SEQUENCE = "SELECT seq FROM developer_events_sequence WHERE one FOR UPDATE SKIP LOCKED"
_LAST = "SELECT seq FROM developer_events_sequence WHERE one"
_UNSTAMPED = "SELECT id FROM developer_events WHERE seq IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
# The ids are integers the server just returned, and ascending: FIND_IN_SET gives each its rank. Spelled out in
# the statement so that the UPDATE looks each row up by primary key and touches no other (never waits on a writer).
_STAMP = "UPDATE developer_events SET seq = %s + FIND_IN_SET(id, %s) WHERE id IN ({ids})"
_MOVE_SEQUENCE = "UPDATE developer_events_sequence SET seq = %s WHERE one"


async def _fetch(connection: asyncmy.Connection, query: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    async with connection.cursor() as cursor:
        await cursor.execute(query, tuple(args) or None)
        return list(await cursor.fetchall())


def _stored(row: tuple[Any, ...]) -> StoredEvent:
    seq, event_id, op, developer_id, specialty, specialties, *rest = row
    listed = None if specialties is None else json.loads(specialties)
    return stored_event((seq, event_id), Row(op, developer_id, specialty, listed, *rest))


def _cursor(rows: list[tuple[Any, ...]]) -> Cursor:
    return START if not rows else (int(rows[0][0]), int(rows[0][1]))


async def state(connection: asyncmy.Connection) -> tuple[int, bool]:
    """(the last stamp, whether any event is unstamped: committed, or still being written)."""
    rows = await _fetch(connection, _STATE)
    return int(rows[0][0]), bool(rows[0][1])


async def stamp(connection: asyncmy.Connection, limit: int) -> tuple[int, int]:
    """Stamp up to `limit` committed events, oldest id first: (the last stamp now, how many were stamped). One
    short transaction, six round trips: BEGIN, the sequence's lock, the rows, the stamps, the sequence, COMMIT."""
    await connection.begin()
    try:
        locked = await _fetch(connection, _LOCK_SEQUENCE)
        if not locked:  # another process's sequencer is stamping: it stamps for this one too
            await connection.commit()
            return await _last(connection), 0
        last = int(locked[0][0])
        ids = [int(row[0]) for row in await _fetch(connection, _UNSTAMPED, (limit,))]
        if ids:
            listed = ",".join(map(str, ids))
            await _fetch(connection, _STAMP.format(ids=listed), (last, listed))
            last += len(ids)
            await _fetch(connection, _MOVE_SEQUENCE, (last,))
        await connection.commit()
    except BaseException:
        await _rollback(connection)
        raise
    return last, len(ids)


async def _last(connection: asyncmy.Connection) -> int:
    return int((await _fetch(connection, _LAST))[0][0])


async def _rollback(connection: asyncmy.Connection) -> None:
    with contextlib.suppress(Exception):  # a lost connection: the server has rolled back already
        await connection.rollback()


async def read(connection: asyncmy.Connection, after: Cursor, limit: int) -> list[StoredEvent]:
    """Up to `limit` stamped events after `after`, in order."""
    rows = await _fetch(connection, _READ, (after[0], after[0], after[1], limit))
    return [_stored(row) for row in rows]


def _between(after: Cursor, upto: Cursor, audience: Audience, limit: int) -> tuple[Any, ...]:
    specialty, viewer = audience
    return (after[0], after[0], after[1], upto[0], upto[0], upto[1], specialty, specialty, viewer, viewer, limit)


async def read_between(
    connection: asyncmy.Connection, after: Cursor, upto: Cursor, audience: Audience, limit: int
) -> list[StoredEvent]:
    """Up to `limit` events in (after, upto] shown to `audience`: a replay of events already served."""
    rows = await _fetch(connection, _READ_FOR, _between(after, upto, audience, limit))
    return [_stored(row) for row in rows]


async def count_between(
    connection: asyncmy.Connection, after: Cursor, upto: Cursor, audience: Audience, bound: int
) -> int:
    """How many events in (after, upto] `audience` is shown, counted no further than `bound`."""
    rows = await _fetch(connection, _COUNT, _between(after, upto, audience, bound))
    return int(rows[0][0])


async def latest(connection: asyncmy.Connection) -> Cursor:
    """The newest stamped event's cursor (START if none)."""
    return _cursor(await _fetch(connection, _LATEST))


async def horizon(connection: asyncmy.Connection) -> Cursor:
    """The newest event retention has deleted (START if none)."""
    return _cursor(await _fetch(connection, _HORIZON))
