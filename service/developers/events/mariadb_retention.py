"""Retention on MariaDB: the events older than EVENTS_RETENTION_HOURS are deleted, a batch per short transaction,
by one process at a time (a named lock, MariaDB's advisory lock), and the newest deleted cursor is kept as the
horizon: a subscriber resuming below it may have missed events, and is answered 410 (as on PostgreSQL:
service.developers.events.retention). Only stamped events are deleted: an unstamped one has not been served yet.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncmy

from service.developers.events.cursor import START

BATCH = 10_000  # events deleted per transaction: short transactions, short locks
_LOCK = "devdir.developer_events.retention"
_OLDEST = (
    "SELECT seq, id FROM developer_events WHERE seq IS NOT NULL AND at < NOW(6) - INTERVAL %s HOUR "
    "ORDER BY at LIMIT %s FOR UPDATE"
)
_DELETE = "DELETE FROM developer_events WHERE id IN ({ids})"  # integers the server just returned
_HORIZON = "SELECT seq, id FROM developer_events_horizon WHERE one FOR UPDATE"
_MOVE = (
    "INSERT INTO developer_events_horizon (one, seq, id) VALUES (1, %s, %s) "
    "ON DUPLICATE KEY UPDATE seq = VALUES(seq), id = VALUES(id)"
)


async def _fetch(connection: asyncmy.Connection, query: str, *args: Any) -> list[tuple[Any, ...]]:
    async with connection.cursor() as cursor:
        await cursor.execute(query, args or None)
        return list(await cursor.fetchall())


async def delete_expired(connection: asyncmy.Connection, retention_hours: int) -> int:
    """Delete the events older than the retention; how many (0 when another process holds the lock)."""
    if not (await _fetch(connection, "SELECT GET_LOCK(%s, 0)", _LOCK))[0][0]:
        return 0
    deleted = 0
    try:
        while (count := await _delete_batch(connection, retention_hours)) > 0:
            deleted += count
            if count < BATCH:
                break
            await asyncio.sleep(0)
    finally:
        await _fetch(connection, "SELECT RELEASE_LOCK(%s)", _LOCK)
    return deleted


async def _delete_batch(connection: asyncmy.Connection, retention_hours: int) -> int:
    await connection.begin()
    try:
        oldest = await _fetch(connection, _OLDEST, retention_hours, BATCH)
        gone = [(int(seq), int(event_id)) for seq, event_id in oldest]
        if gone:
            await _fetch(connection, _DELETE.format(ids=",".join(str(event_id) for _, event_id in gone)))
            rows = await _fetch(connection, _HORIZON)
            horizon = START if not rows else (int(rows[0][0]), int(rows[0][1]))
            newest = max(gone)
            if newest > horizon:
                await _fetch(connection, _MOVE, *newest)
        await connection.commit()
    except BaseException:
        await connection.rollback()
        raise
    return len(gone)
