"""The sequencer on MariaDB when several run at once, as they do in several processes: each committed event is
stamped exactly once, the stamps 1..n with none alike."""

from __future__ import annotations

import asyncio

from service.developers.events import mariadb_store
from tests import mariadb
from tests.developers.feed_mariadb import connection, execute, insert_sql, reset


async def test_many_processes_stamping_at_once_give_each_event_one_place(mariadb_url: str) -> None:
    """Sequencers in several connections at once (as in several processes) stamp every committed event exactly
    once, with stamps 1..n and no two alike."""
    await reset(mariadb_url)
    writes = 300

    async def write(n: int) -> None:
        async with connection(mariadb_url) as conn:
            for i in range(n, writes, 3):
                await execute(conn, insert_sql(f"W {i}", f"w{i}@x.io", "s"))

    async def sequence(stop: asyncio.Event) -> int:
        stamped = 0
        async with connection(mariadb_url) as conn:
            await execute(conn, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            while not stop.is_set() or await _unstamped(mariadb_url):
                stamped += (await mariadb_store.stamp(conn, 7))[1]
                await asyncio.sleep(0)
        return stamped

    stop = asyncio.Event()
    sequencers = [asyncio.create_task(sequence(stop)) for _ in range(4)]
    await asyncio.gather(*(write(n) for n in range(3)))
    stop.set()
    counts = await asyncio.gather(*sequencers)
    assert sum(counts) == writes
    stamps = [row[0] for row in await mariadb.fetch(mariadb_url, "SELECT seq FROM developer_events ORDER BY seq")]
    assert stamps == list(range(1, writes + 1))
    assert await mariadb.fetchval(mariadb_url, "SELECT seq FROM developer_events_sequence") == writes
    await reset(mariadb_url)


async def _unstamped(url: str) -> bool:
    return bool(await mariadb.fetchval(url, "SELECT count(*) FROM developer_events WHERE seq IS NULL"))
