"""Bulk import on MariaDB: the service against the seed's ORM pattern on the same server, and against PostgreSQL.

    uv run python -m tests.bench.mariadb_bulk [--rows 1000000] [--orm-rows 1000000] [--rounds 3]

Fresh databases on the tests' MariaDB (tests/mariadb.py) and PostgreSQL (TEST_DATABASE_URL's, or an embedded
one). Served by `devdir run` (one granian worker) on each, and by granian serving the ORM reference
(tests/bench/mariadb_orm_app.py: one model instance per row, add_all, commit) on MariaDB twice: on the service's
schema (its row triggers write one change-feed event per row, as any single-row write does there) and on a copy
without triggers (the seed's own schema had none: the stricter comparison). Each round runs every scenario once,
in the same order, from an empty table, timed from the first byte sent to the answer:

  service MariaDB   --rows developers as one NDJSON stream (POST /api/developers/bulk)
  asyncmy           the same rows as 10,000-row multi-row INSERTs from asyncmy itself, no HTTP: the limit
  service Postgres  the same import on PostgreSQL
  service MariaDB   --orm-rows developers as one JSON array (the ORM's body)
  ORM MariaDB       --orm-rows as one JSON array, service schema / no triggers

The ORM reference holds every row as an ORM object: at 1,000,000 rows it takes about 2 minutes and 2.5 GB a run
(--orm-rows makes it smaller, for a quicker look; rows/s are compared). Printed: each scenario's median rows/s,
its spread (min-max), the ratios of medians, and the service workers' peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack

import msgspec

from tests import database, mariadb
from tests.bench.bulk import SECRET, ndjson, person, post
from tests.bench.servers import BIN, memory_mb, serving, worker_pid
from tests.processes import free_port

IMPORT = "/api/developers/bulk"


def empty_mariadb(url: str) -> None:
    asyncio.run(mariadb.run_sql(url, "TRUNCATE TABLE developers", "TRUNCATE TABLE developer_events"))


def empty_postgres(url: str) -> None:
    asyncio.run(
        database.run_sql(
            url, "TRUNCATE developers, developer_events RESTART IDENTITY", "VACUUM ANALYZE developers, developer_events"
        )
    )


async def raw_inserts(url: str, rows: int) -> tuple[float, dict[str, int]]:
    """The physical limit of this path: the rows as 10,000-row multi-row INSERTs straight from asyncmy, one
    transaction, the triggers silenced as the service silences them; no HTTP, no parsing, no events."""
    conn = await mariadb.connect(url)
    try:
        async with conn.cursor() as cursor:
            await cursor.execute("SET @devdir_bulk = 1")
            started = time.perf_counter()
            await cursor.execute("BEGIN")
            for first in range(0, rows, 10_000):
                chunk = [tuple(person(i).values()) for i in range(first, min(first + 10_000, rows))]
                values = ",".join(["(%s,%s,%s)"] * len(chunk))
                sql = f"INSERT INTO developers (name, email, specialty) VALUES {values}"
                await cursor.execute(sql, [value for row in chunk for value in row])
            await cursor.execute("COMMIT")
            return time.perf_counter() - started, {"created": rows}
    finally:
        conn.close()


def timed(run: Callable[[], tuple[float, dict[str, int]]], rows: int) -> float:
    seconds, counts = run()
    assert counts["created"] == rows, counts
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--orm-rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    array = msgspec.json.encode([person(i) for i in range(args.orm_rows)])
    env = os.environ | {"SECRET_KEY": SECRET, "WORKER_IN_PROCESS": "false"}
    with ExitStack() as stack:
        mdb_server = mariadb.server_url()
        mdb = stack.enter_context(mariadb.fresh_database(mdb_server))
        plain = stack.enter_context(mariadb.fresh_database(mdb_server))
        asyncio.run(
            mariadb.run_sql(plain, *(f"DROP TRIGGER developer_events_{op}" for op in ("insert", "update", "delete")))
        )
        pg = stack.enter_context(database.fresh_database(stack.enter_context(database.server_url())))
        ports = {name: free_port() for name in ("mdb", "pg", "orm", "orm_plain")}

        def devdir(url: str, port: int) -> int:
            command = [str(BIN / "devdir"), "run", "--port", str(port), "--workers", "1"]
            return stack.enter_context(serving(command, env | {"DATABASE_URL": url}, port)).pid

        def orm(url: str, port: int) -> None:
            command = [str(BIN / "granian"), "--interface", "asgi", "--port", str(port), "--workers", "1"]
            stack.enter_context(
                serving([*command, "tests.bench.mariadb_orm_app:app"], env | {"DATABASE_URL": url}, port)
            )

        servers = {"mdb": devdir(mdb, ports["mdb"]), "pg": devdir(pg, ports["pg"])}
        orm(mdb, ports["orm"])
        orm(plain, ports["orm_plain"])
        scenarios: dict[str, tuple[int, Callable[[], None], Callable[[], tuple[float, dict[str, int]]]]] = {
            f"service, MariaDB, NDJSON {args.rows:,}": (
                args.rows,
                lambda: empty_mariadb(mdb),
                lambda: post(ports["mdb"], IMPORT, ndjson(0, args.rows), "application/x-ndjson"),
            ),
            f"asyncmy multi-row INSERT {args.rows:,}, no HTTP": (
                args.rows,
                lambda: empty_mariadb(mdb),
                lambda: asyncio.run(raw_inserts(mdb, args.rows)),
            ),
            f"service, PostgreSQL, NDJSON {args.rows:,}": (
                args.rows,
                lambda: empty_postgres(pg),
                lambda: post(ports["pg"], IMPORT, ndjson(0, args.rows), "application/x-ndjson"),
            ),
            f"service, MariaDB, JSON array {args.orm_rows:,}": (
                args.orm_rows,
                lambda: empty_mariadb(mdb),
                lambda: post(ports["mdb"], IMPORT, array, "application/json"),
            ),
            f"ORM add_all, MariaDB, service schema {args.orm_rows:,}": (
                args.orm_rows,
                lambda: empty_mariadb(mdb),
                lambda: post(ports["orm"], "/orm/developers/bulk", array, "application/json"),
            ),
            f"ORM add_all, MariaDB, no triggers {args.orm_rows:,}": (
                args.orm_rows,
                lambda: empty_mariadb(plain),
                lambda: post(ports["orm_plain"], "/orm/developers/bulk", array, "application/json"),
            ),
        }
        seconds: dict[str, list[float]] = {name: [] for name in scenarios}
        for number in range(1, args.rounds + 1):
            for name, (rows, empty, run) in scenarios.items():
                empty()
                seconds[name].append(timed(run, rows))
                print(f"round {number}: {name:<48} {seconds[name][-1]:7.2f} s", flush=True)
        peaks = {name: memory_mb(worker_pid(pid), "VmHWM") for name, pid in servers.items()}
    report(args, scenarios, seconds, peaks)


def report(
    args: argparse.Namespace,
    scenarios: dict[str, tuple[int, Callable[[], None], Callable[[], tuple[float, dict[str, int]]]]],
    seconds: dict[str, list[float]],
    peaks: dict[str, float],
) -> None:
    print(f"\nBulk import, {args.rounds} interleaved rounds: median rows/s (min-max), seconds of each run")
    median: dict[str, float] = {}
    for name, runs in seconds.items():
        rates = [scenarios[name][0] / s for s in runs]
        median[name] = statistics.median(rates)
        spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
        print(f"  {name:<48}{median[name]:>10,.0f}  ({spread})  [{', '.join(f'{s:.2f}' for s in runs)}]")
    service, raw, pg, small, orm, plain = median.values()
    print(f"\n  service MariaDB NDJSON / ORM (service schema)        {service / orm:6.1f}x   (target >= 10)")
    print(f"  service MariaDB NDJSON / ORM (no triggers)           {service / plain:6.1f}x")
    print(f"  service MariaDB JSON array / ORM (service schema)    {small / orm:6.1f}x   (the same body)")
    print(f"  service MariaDB JSON array / ORM (no triggers)       {small / plain:6.1f}x   (the same body)")
    print(f"  raw multi-row INSERTs / ORM (service schema)         {raw / orm:6.1f}x   (the ceiling: no HTTP)")
    print(f"  service MariaDB NDJSON / raw multi-row INSERTs       {service / raw:6.2f}")
    print(f"  service MariaDB NDJSON / service PostgreSQL NDJSON   {service / pg:6.2f}")
    print(f"  peak RSS of the service's worker: MariaDB {peaks['mdb']:.0f} MB, PostgreSQL {peaks['pg']:.0f} MB")


if __name__ == "__main__":
    main()
