"""The change feed on MariaDB, as its tests drive it: an emptied outbox, developers written with plain SQL (the
triggers record their events), and the outbox read in the feed's order (stamped events, by (seq, id))."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field
from typing import Any

import asyncmy
import asyncmy.errors
from sqlalchemy.engine import make_url

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


# Under faults: writers with plain SQL, and a killer of the app's connections


@dataclass
class SQLLedger:
    """What the writers' transactions did: the keys of the events of those that committed, and of those whose
    COMMIT got no answer (committed or not: the server went away)."""

    committed: list[Hashable] = field(default_factory=list)
    unknown: list[Hashable] = field(default_factory=list)
    connection_ids: set[int] = field(default_factory=set)  # the writers' own: never killed


async def write_sql(url: str, ledger: SQLLedger, writer: int, tag: str, stop: asyncio.Event) -> None:
    """Transactions of one to three writes (creates, renames of this writer's developers), some held open a
    moment so that commits cross, until `stop`; reconnects after losing its connection."""
    rng = random.Random(f"{tag}-{writer}")
    own: list[int] = []
    conn: asyncmy.Connection | None = None
    n = 0
    while not stop.is_set():
        keys: list[Hashable] = []
        try:
            if conn is None:
                conn = await mariadb.connect(url)
                ledger.connection_ids.add(int(conn.thread_id()))
            await conn.begin()
            made: list[int] = []
            for _ in range(rng.randint(1, 3)):
                n += 1
                if own and rng.random() < 0.3:
                    developer, name = rng.choice(own), f"Renamed {writer}-{n} {tag}"
                    await execute(conn, "UPDATE developers SET name = %s WHERE id = %s", name, developer)
                    keys.append(("updated", developer, name))
                else:
                    email = f"w{writer}-{n}-{tag}@faults.io"
                    async with conn.cursor() as cursor:
                        await cursor.execute(insert_sql(f"Writer {writer}-{n}", email, "alpha"))
                        made.append(int(cursor.lastrowid))
                    keys.append(("created", email))
            if rng.random() < 0.3:
                await asyncio.sleep(rng.uniform(0, 0.03))  # held open while other writers commit
            await conn.commit()
            ledger.committed.extend(keys)
            own.extend(made)
        except (OSError, asyncmy.errors.Error):
            ledger.unknown.extend(keys)
            if conn is not None:
                conn.close()
            conn = None
            await asyncio.sleep(0.05)
    if conn is not None:
        conn.close()


@dataclass
class ConnectionKiller:
    """KILLs the app's connections to `url`'s database (all but the writers' and its own), over and over until
    `stop`: the feed's own connection (`feed_connection()` names it) every `feed_every` rounds, else the pool's."""

    url: str
    spare: set[int]
    feed_kills: int = 0
    other_kills: int = 0

    async def run(self, stop: asyncio.Event, feed_connection: Any, every: float = 0.1, feed_every: int = 3) -> None:
        database = make_url(self.url).database
        async with connection(self.url) as conn:
            round_ = 0
            while not stop.is_set():
                feed = feed_connection()
                rows = await mariadb.fetch(
                    self.url,
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
                    database,
                )
                ids = {int(row[0]) for row in rows} - self.spare - {int(conn.thread_id())}
                chosen = {feed} & ids if round_ % feed_every == 0 else ids - {feed}
                for victim in chosen:
                    with contextlib.suppress(asyncmy.errors.Error):  # gone meanwhile
                        await execute(conn, f"KILL {victim}")
                        if victim == feed:
                            self.feed_kills += 1
                        else:
                            self.other_kills += 1
                round_ += 1
                await asyncio.sleep(every)
