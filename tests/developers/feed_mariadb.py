"""The change feed on MariaDB, as its tests drive it: an emptied outbox, developers written with plain SQL (the
triggers record their events), and the outbox read in the feed's order (stamped events, by (seq, id))."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Hashable
from typing import Any

import asyncmy

from tests import mariadb
from tests.developers.feed_faults_support import Outboxed

RESET = (
    "SET FOREIGN_KEY_CHECKS = 0",
    "TRUNCATE TABLE developers",
    "TRUNCATE TABLE developer_events",
    "TRUNCATE TABLE developer_events_horizon",
    "TRUNCATE TABLE import_jobs",
    "UPDATE developer_events_sequence SET seq = 0",
)


async def reset(url: str) -> None:
    """No developers, events, horizon or jobs; stamps begin at 1 again."""
    await mariadb.run_sql(url, *RESET)


def insert_sql(name: str, email: str, specialty: str) -> str:
    return f"INSERT INTO developers (name, email, specialty) VALUES ('{name}', '{email}', '{specialty}')"


async def execute(connection: asyncmy.Connection, statement: str, *args: Any) -> None:
    async with connection.cursor() as cursor:
        await cursor.execute(statement, args or None)


@contextlib.asynccontextmanager
async def connection(url: str) -> AsyncIterator[asyncmy.Connection]:
    connected = await mariadb.connect(url)
    try:
        yield connected
    finally:
        connected.close()


async def stamped_latest(url: str) -> str:
    rows = await mariadb.fetch(
        url, "SELECT seq, id FROM developer_events WHERE seq IS NOT NULL ORDER BY seq DESC, id DESC LIMIT 1"
    )
    return f"{rows[0][0]}-{rows[0][1]}" if rows else "0-0"


async def unstamped(url: str) -> int:
    return int(await mariadb.fetchval(url, "SELECT count(*) FROM developer_events WHERE seq IS NULL"))


async def outbox(url: str, after: str = "0-0") -> list[Outboxed]:
    """Every stamped event after `after`, in the feed's order, each with the key of the write it records (as
    tests.developers.feed_faults_support.outbox reads PostgreSQL's)."""
    seq, _, number = after.partition("-")
    rows = await mariadb.fetch(
        url,
        "SELECT seq, id, op, developer_id, JSON_VALUE(developer, '$.email'), JSON_VALUE(developer, '$.name'), bulk "
        "FROM developer_events WHERE seq > %s OR (seq = %s AND id > %s) ORDER BY seq, id",
        int(seq),
        int(seq),
        int(number),
    )
    events = []
    for stamp, event_id, op, developer_id, email, name, bulk in rows:
        key: Hashable
        if op == "created":
            key = ("created", email)
        elif op == "updated":
            key = ("updated", developer_id, name)
        elif op == "deleted":
            key = ("deleted", developer_id)
        else:
            summary = json.loads(bulk)
            key = ("bulk", summary["operation"], summary["first_id"], summary["last_id"])
        events.append(Outboxed(f"{stamp}-{event_id}", op, key))
    return events
