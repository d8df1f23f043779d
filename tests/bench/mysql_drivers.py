"""Which asyncio driver for MariaDB and MySQL: asyncmy against aiomysql, on the same server, in the same run.

    uv run python -m tests.bench.mysql_drivers [--url mysql://root@127.0.0.1:3306/test] [--rounds 7] [--rows 10000]

Makes a scratch database (`devdir_drivers`, dropped at the end) with a `developers` table shaped like the
service's (bigint identity key, name, email unique, specialty, two DATETIME(6)), loads --rows rows, and then, in
each round, runs the same four workloads on one connection of each driver, the two drivers in a random order each
round:

  get      SELECT one developer by primary key, 2,000 times (the hot read)
  page     SELECT a page of 100 in (name, id) order after a keyset cursor, 300 times (the list)
  insert   INSERT 20 batches of 1,000 rows with executemany (both drivers rewrite an INSERT ... VALUES into
           multi-row statements: the bulk path)
  upsert   the same as INSERT ... ON DUPLICATE KEY UPDATE over rows that all exist (the bulk path's `update` mode)

Printed: per workload, the median operations (statements, or rows for the bulk ones) a second of each driver over
the rounds, asyncmy/aiomysql (median of the rounds' ratios, with min and max), and the CPU seconds of this process
per operation, as both drivers run in it (the server's share is the same for both).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import warnings
from collections import defaultdict
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

import aiomysql  # type: ignore[import-untyped]
import asyncmy

DATABASE = "devdir_drivers"
GETS, PAGES, BATCHES, BATCH = 2000, 300, 20, 1000
TABLE = """CREATE TABLE developers (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    email VARCHAR(320) NOT NULL,
    specialty VARCHAR(100) NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    UNIQUE KEY uq_developers_email (email),
    KEY ix_developers_name_id (name, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"""
COLUMNS = "id, name, email, specialty, created_at, updated_at"
GET = f"SELECT {COLUMNS} FROM developers WHERE id = %s"
PAGE = f"SELECT {COLUMNS} FROM developers WHERE (name, id) > (%s, %s) ORDER BY name, id LIMIT 100"
INSERT = "INSERT INTO developers (name, email, specialty) VALUES (%s, %s, %s)"
UPSERT = INSERT + " ON DUPLICATE KEY UPDATE name = VALUES(name), specialty = VALUES(specialty)"

Connect = Callable[[], Awaitable[Any]]
Workload = Callable[[Any, int], Awaitable[int]]


def connectors(url: str) -> dict[str, Connect]:
    parts = urlsplit(url)
    options = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": parts.username or "root",
        "password": parts.password or "",
        "db": DATABASE,
        "autocommit": True,
        "charset": "utf8mb4",
    }
    return {
        "asyncmy": lambda: asyncmy.connect(**options),
        "aiomysql": lambda: aiomysql.connect(**options),
    }


async def gets(connection: Any, rows: int) -> int:
    async with connection.cursor() as cursor:
        for i in range(GETS):
            await cursor.execute(GET, (1 + i * 7919 % rows,))
            await cursor.fetchall()
    return GETS


async def pages(connection: Any, _rows: int) -> int:
    async with connection.cursor() as cursor:
        after: tuple[str, int] = ("", 0)
        for _ in range(PAGES):
            await cursor.execute(PAGE, after)
            page = await cursor.fetchall()
            after = (page[-1][1], page[-1][0]) if len(page) == 100 else ("", 0)
    return PAGES


async def inserts(connection: Any, _rows: int) -> int:
    tag = f"{time.monotonic_ns()}-{random.randrange(10**6)}"
    async with connection.cursor() as cursor:
        for batch in range(BATCHES):
            values = [(f"n{tag}-{batch}-{i}", f"{tag}-{batch}-{i}@example.com", "bench") for i in range(BATCH)]
            await cursor.executemany(INSERT, values)
    return BATCHES * BATCH


async def upserts(connection: Any, rows: int) -> int:
    async with connection.cursor() as cursor:
        for batch in range(BATCHES):
            first = 1 + batch * BATCH % max(rows - BATCH, 1)
            values = [(f"u{i}", f"seed-{i}@example.com", "upserted") for i in range(first, first + BATCH)]
            await cursor.executemany(UPSERT, values)
    return BATCHES * BATCH


WORKLOADS: dict[str, Workload] = {"get": gets, "page": pages, "insert": inserts, "upsert": upserts}


async def prepare(url: str, rows: int) -> None:
    parts = urlsplit(url)
    server = await asyncmy.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        autocommit=True,
    )
    async with server.cursor() as cursor:
        await cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        await cursor.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        await cursor.execute(f"USE {DATABASE}")
        await cursor.execute(TABLE)
        for start in range(0, rows, BATCH):
            values = [(f"seed {i:07d}", f"seed-{i}@example.com", f"s{i % 20}") for i in range(start, start + BATCH)]
            await cursor.executemany(INSERT, values[: rows - start])
    server.close()


async def drop(url: str) -> None:
    parts = urlsplit(url)
    server = await asyncmy.connect(
        host=parts.hostname or "127.0.0.1", port=parts.port or 3306, user=parts.username or "root",
        password=parts.password or "", autocommit=True,
    )  # fmt: skip
    async with server.cursor() as cursor:
        await cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    server.close()


async def bench(args: argparse.Namespace) -> None:
    await prepare(args.url, args.rows)
    connect = connectors(args.url)
    rates: dict[tuple[str, str], list[float]] = defaultdict(list)
    cpu: dict[tuple[str, str], list[float]] = defaultdict(list)
    ratios: dict[str, list[float]] = defaultdict(list)
    try:
        for number in range(1, args.rounds + 1):
            order = list(connect)
            random.shuffle(order)
            this: dict[tuple[str, str], float] = {}
            for driver in order:
                connection = await connect[driver]()
                try:
                    for workload, run in WORKLOADS.items():
                        started, started_cpu = time.perf_counter(), time.process_time()
                        done = await run(connection, args.rows)
                        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
                        this[driver, workload] = done / seconds
                        rates[driver, workload].append(done / seconds)
                        cpu[driver, workload].append(cpu_seconds / done * 1e6)
                finally:
                    connection.close()
            for workload in WORKLOADS:
                ratios[workload].append(this["asyncmy", workload] / this["aiomysql", workload])
            summary = "  ".join(f"{w} {this['asyncmy', w] / this['aiomysql', w]:.2f}" for w in WORKLOADS)
            print(f"  round {number}: asyncmy/aiomysql {summary}", flush=True)
    finally:
        await drop(args.url)
    print()
    print(f"asyncmy {version('asyncmy')} against aiomysql {version('aiomysql')}, {args.rows:,} rows, one")
    print(f"connection each, {args.rounds} rounds, the drivers in a random order each round")
    header = f"{'workload':<10}{'asyncmy/s':>12}{'aiomysql/s':>12}  {'asyncmy/aiomysql (min max)':<28}"
    print(header + f"{'client µs/op m/a':>18}")
    for workload in WORKLOADS:
        a, b = statistics.median(rates["asyncmy", workload]), statistics.median(rates["aiomysql", workload])
        r = ratios[workload]
        ca, cb = statistics.median(cpu["asyncmy", workload]), statistics.median(cpu["aiomysql", workload])
        spread = f"{statistics.median(r):.2f} ({min(r):.2f} {max(r):.2f})"
        print(f"{workload:<10}{a:>12,.0f}{b:>12,.0f}  {spread:<28}{ca:>9.1f} / {cb:<6.1f}")
    print("(get, page: statements a second; insert, upsert: rows a second)")


def main() -> None:
    warnings.filterwarnings("ignore", message=".*database doesn't exist")  # DROP DATABASE IF EXISTS's note
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="mysql://root@127.0.0.1:3306/test", help="the server (its database unused)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--rows", type=int, default=10_000)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
