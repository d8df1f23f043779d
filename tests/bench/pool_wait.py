"""What a checkout costs the event loop when requests queue for a connection: CPU time per checkout and return.

    uv run python -m tests.bench.pool_wait [--tasks 20,128,512] [--rounds 7] [--checkouts 20000]

On TEST_DATABASE_URL's server (or an embedded PostgreSQL), N tasks on one uvloop loop take turns on 20
connections: each checks one out, yields to the loop once while holding it, and gives it back, with no query, so
that only the pool's own work is timed. At 20 tasks no one waits; beyond, nearly every checkout waits in line.
Three pools, in turn, each round: the service's (`engine.raw_connection()`, as the hot reads check out, through
service.db.pool), the same behind an asyncio.Semaphore of the pool's size (waiting outside SQLAlchemy's greenlet),
and asyncpg's own pool (`pool.acquire()`, as the reference app; its release resets the connection, one round
trip). It prints the median CPU µs of the loop's thread per checkout over the rounds, and the lowest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg
import uvloop

from service.core.settings import Settings
from service.db.config import sqlalchemy_config
from tests.database import fresh_database, server_url

POOL_SIZE = 20


async def cpu_per_checkout(checkout: Callable[[], Awaitable[None]], tasks: int, checkouts: int) -> float:
    left = checkouts

    async def take_turns() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await checkout()

    started = time.thread_time()
    await asyncio.gather(*(take_turns() for _ in range(tasks)))
    return (time.thread_time() - started) / checkouts * 1e6


async def measure(url: str, levels: list[int], rounds: int, checkouts: int) -> None:
    settings = Settings(secret_key="x" * 40, database_url=url, db_pool_size=POOL_SIZE, db_max_overflow=0)
    engine = sqlalchemy_config(settings).get_engine()
    reference = await asyncpg.create_pool(url.replace("+asyncpg", ""), min_size=POOL_SIZE, max_size=POOL_SIZE)
    gate = asyncio.Semaphore(POOL_SIZE)

    async def service() -> None:
        pooled = await engine.raw_connection()
        await asyncio.sleep(0)
        pooled.close()

    async def gated() -> None:
        async with gate:
            await service()

    async def plain_asyncpg() -> None:
        async with reference.acquire():
            await asyncio.sleep(0)

    pools = {"service pool": service, "service pool behind a semaphore": gated, "asyncpg pool": plain_asyncpg}
    try:
        for checkout in pools.values():  # every connection open, statement caches warm
            await cpu_per_checkout(checkout, 64, checkouts // 10)
        figures: dict[tuple[str, int], list[float]] = {}
        for _ in range(rounds):
            for tasks in levels:
                for name, checkout in pools.items():
                    figures.setdefault((name, tasks), []).append(await cpu_per_checkout(checkout, tasks, checkouts))
    finally:
        await engine.dispose()
        await reference.close()
    print(f"{POOL_SIZE} connections, {checkouts} checkouts a run, {rounds} rounds; loop CPU µs per checkout")
    print(f"{'pool':<34}{'tasks':>6}{'median':>8}{'lowest':>8}")
    for tasks in levels:
        for name in pools:
            runs = figures[name, tasks]
            print(f"{name:<34}{tasks:>6}{statistics.median(runs):>8.1f}{min(runs):>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="20,128,512", help="comma-separated numbers of tasks taking turns")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--checkouts", type=int, default=20_000, help="checkouts per run")
    args = parser.parse_args()
    with server_url() as server, fresh_database(server, migrate=False) as url:
        levels = [int(level) for level in args.tasks.split(",")]
        uvloop.run(measure(url, levels, args.rounds, args.checkouts))


if __name__ == "__main__":
    main()
