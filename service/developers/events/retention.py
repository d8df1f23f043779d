"""Retention: events older than EVENTS_RETENTION_HOURS are deleted, a batch at a time, by one process at a time
(run by the import workers' scheduler: service.imports.scheduler).

The deleted events' newest cursor is kept as the horizon: a subscriber resuming from a cursor below it may have
missed events, and is answered 410 (re-list) instead of a replay with a hole in it.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from service.db.isolation import DRIVER_LEVELS, WRITES

logger = logging.getLogger("service.developers.events")

BATCH = 10_000  # events deleted per statement: short transactions, short locks
_LOCK = 0x64657664_6576  # pg_try_advisory_xact_lock key: one replica deletes at a time
_DELETE = """
    WITH gone AS (
        DELETE FROM developer_events WHERE id IN (
            SELECT id FROM developer_events WHERE at < statement_timestamp() - make_interval(hours => $1)
            ORDER BY at LIMIT $2)
        RETURNING xid, id),
    newest AS (SELECT xid, id FROM gone ORDER BY xid DESC, id DESC LIMIT 1),
    moved AS (
        INSERT INTO developer_events_horizon (xid, id) SELECT xid, id FROM newest
        ON CONFLICT (one) DO UPDATE SET xid = excluded.xid, id = excluded.id
        WHERE (developer_events_horizon.xid, developer_events_horizon.id) < (excluded.xid, excluded.id))
    SELECT count(*) FROM gone"""


async def delete_expired(connection: asyncpg.Connection, retention_hours: int) -> int:
    """Delete the events older than the retention; how many (0 when another replica holds the lock)."""
    deleted = 0
    level = DRIVER_LEVELS[WRITES["events.retention"].level]
    while True:
        async with connection.transaction(isolation=level):
            if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
                return deleted
            count: int = await connection.fetchval(_DELETE, retention_hours, BATCH)
        deleted += count
        if count < BATCH:
            return deleted
        await asyncio.sleep(0)
