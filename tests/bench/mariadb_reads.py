"""The hot reads on MariaDB against the same reads on PostgreSQL, in the same run.

    uv run python -m tests.bench.mariadb_reads [--rows 10000] [--rounds 7] [--slices 4] [--duration 2]
        [--connections 32] [--postgresql URL] [--mariadb URL]

A fresh database on each server (by default the PostgreSQL on 127.0.0.1:5432 and the MariaDB on 127.0.0.1:3306,
both the machine's own services), migrated to head, holds the same --rows developers (20 specialties), analysed.
Each round starts two new service processes (granian, one worker, DB_POOL_SIZE 20, DB_MAX_OVERFLOW 0), as the image
runs it: `PG` on the PostgreSQL database, `MDB` on the MariaDB one. Each is driven by `wrk -t1` at --connections on
GET /api/developers/{id} (ids at random in 1..--rows) and on GET /api/developers?specialty=S (a page of 100): per
route, after a second's warm-up each, --slices runs of --duration seconds, taking turns PG MDB MDB PG ... (who
starts at random), so both see the machine as it is slice by slice.

Printed: per route, the median requests/s of each, the median of the rounds' MDB/PG ratios with their min and max,
the non-2xx answers, and the CPU time of each app's event-loop thread per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from service.accounts.auth import TokenIssuer, build_auth
from service.core.settings import Settings
from tests import mariadb
from tests.bench.__main__ import LIST_LUA, SPECIALTIES, load
from tests.bench.replica_reads import RANDOM_GET_LUA
from tests.bench.servers import granian_apps, thread_cpu_seconds
from tests.bench.wrk_runs import spread, wrk_run
from tests.database import fresh_database, run_sql
from tests.processes import environment

ROUTES = {"get": ("GET /api/developers/{id}", "/api/developers/"), "list": ("GET /api/developers?specialty=S", "")}
APPS = ("PG", "MDB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--duration", type=int, default=2, help="seconds of each wrk run (a slice)")
    parser.add_argument("--slices", type=int, default=4, help="wrk runs of each app on each route per round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--postgresql", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--mariadb", default=mariadb.DEFAULT_URL)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    began, load_before = time.monotonic(), os.getloadavg()
    with fresh_database(args.postgresql) as pg_url, fresh_database(args.mariadb) as mdb_url:
        asyncio.run(seed(pg_url, mdb_url, args.rows))
        rates, non_2xx, loop_us = measure({"PG": pg_url, "MDB": mdb_url}, args)
    show(rates, non_2xx, loop_us, args, began, load_before)


async def seed(pg_url: str, mdb_url: str, rows: int) -> None:
    """The same --rows developers on both servers, their statistics fresh."""
    await load(pg_url, rows)
    values = [(f"Dev {i:07d}", f"dev{i}@example.com", SPECIALTIES[i % 20]) for i in range(rows)]
    connection = await mariadb.connect(mdb_url)
    try:
        async with connection.cursor() as cursor:
            await cursor.execute("SET @devdir_bulk = 1")  # no change events for the seed
            for start in range(0, rows, 5000):
                await cursor.executemany(
                    "INSERT INTO developers (name, email, specialty) VALUES (%s, %s, %s)", values[start : start + 5000]
                )
            await cursor.execute("ANALYZE TABLE developers")
    finally:
        connection.close()
    await run_sql(pg_url, "VACUUM (FREEZE, ANALYZE) developers")


def measure(
    urls: dict[str, str], args: argparse.Namespace
) -> tuple[dict[tuple[str, str], list[float]], dict[tuple[str, str], int], dict[tuple[str, str], list[float]]]:
    secret = secrets.token_urlsafe(48)
    viewer = TokenIssuer(build_auth(Settings(secret_key=secret))).issue(1, "viewer")
    base = environment(SECRET_KEY=secret, WORKER_IN_PROCESS="false", DB_POOL_SIZE="20", DB_MAX_OVERFLOW="0")
    base = {key: value for key, value in base.items() if not key.startswith(("DATABASE_", "DB_POOLER"))}
    envs = {name: base | {"DATABASE_URL": url} for name, url in urls.items()}
    wrk_env = os.environ | {"ROWS": str(args.rows), "AUTH": f"Bearer {viewer}"}
    rates: dict[tuple[str, str], list[float]] = {}
    non_2xx: dict[tuple[str, str], int] = {}
    loop_us: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        scripts = {"get": Path(tmp) / "get.lua", "list": Path(tmp) / "list.lua"}
        scripts["get"].write_text(RANDOM_GET_LUA)
        scripts["list"].write_text(LIST_LUA)
        for round_ in range(args.rounds):
            with ExitStack() as stack:
                served, workers = granian_apps(stack, envs)
                for route, (_, prefix) in ROUTES.items():
                    run_env = wrk_env | {"PREFIX": prefix or "/api/developers?specialty="}
                    for name in APPS:  # warm: the pools opened, the first requests' imports and caches
                        wrk_run(served[name], scripts[route], run_env, 1, args.connections)
                    order = random.sample(APPS, 2)
                    counts, loop_cpu = dict.fromkeys(APPS, 0), dict.fromkeys(APPS, 0.0)
                    for slice_ in range(args.slices):
                        for name in order if slice_ % 2 == 0 else order[::-1]:
                            before = thread_cpu_seconds(workers[name])
                            run = wrk_run(served[name], scripts[route], run_env, args.duration, args.connections)
                            loop_cpu[name] += thread_cpu_seconds(workers[name]) - before
                            counts[name] += run.count
                            non_2xx[name, route] = non_2xx.get((name, route), 0) + run.non_2xx
                    for name in APPS:
                        rates.setdefault((name, route), []).append(counts[name] / (args.slices * args.duration))
                        loop_us.setdefault((name, route), []).append(loop_cpu[name] / max(counts[name], 1) * 1e6)
            line = "  ".join(f"{app} {route} {values[-1]:.0f}" for (app, route), values in rates.items())
            print(f"  round {round_ + 1}: {line}", flush=True)
    return rates, non_2xx, loop_us


def show(
    rates: dict[tuple[str, str], list[float]],
    non_2xx: dict[tuple[str, str], int],
    loop_us: dict[tuple[str, str], list[float]],
    args: argparse.Namespace,
    began: float,
    load_before: tuple[float, float, float],
) -> None:
    print(
        f"\nHot reads, MariaDB (MDB) against PostgreSQL (PG): {args.rows:,} developers, wrk -t1 -c{args.connections}, "
        f"{args.slices} slices of {args.duration}s per app and route, {args.rounds} rounds, new processes each round "
        f"(granian, one worker, DB_POOL_SIZE 20); {os.cpu_count()} CPUs; load average {load_before[0]:.2f} at the "
        f"start, {os.getloadavg()[0]:.2f} at the end; {time.monotonic() - began:.0f} s"
    )
    print(
        f"{'route':<32}{'PG req/s':>9}{'MDB req/s':>10}  {'MDB/PG (min max)':<18}{'non-2xx':>9}{'loop µs PG/MDB':>16}"
    )
    for route, (label, _) in ROUTES.items():
        pg, mdb = rates["PG", route], rates["MDB", route]
        ratios = [m / p for p, m in zip(pg, mdb, strict=True)]
        loop = " / ".join(f"{statistics.median(loop_us[app, route]):.0f}" for app in APPS)
        errors = f"{non_2xx['PG', route]}/{non_2xx['MDB', route]}"
        print(
            f"{label:<32}{statistics.median(pg):>9.0f}{statistics.median(mdb):>10.0f}  {spread(ratios):<18}"
            f"{errors:>9}{loop:>16}"
        )
    print("MDB/PG: the median over the rounds of each round's ratio, with the lowest and highest")


if __name__ == "__main__":
    main()
