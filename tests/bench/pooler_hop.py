"""The cost of the hop: the hot reads through a transaction-mode PgBouncer against the same reads straight to
PostgreSQL, in the same run.

    uv run python -m tests.bench.pooler_hop [--rows 100000] [--rounds 7] [--slices 4] [--duration 2] [--connections 32]

A PostgreSQL of its own (tests/bench/own_postgres.py) holding --rows developers, and a PgBouncer 1.18 in front of
it (tests/pgbouncer.py, transaction mode, default_pool_size 20). Each round starts two new service processes
(granian, one worker, DB_POOL_SIZE 20): `direct` (DB_POOLER=none, DATABASE_URL = PostgreSQL over TCP) and
`pooled` (DB_POOLER=transaction, DATABASE_URL = the pooler, DATABASE_DIRECT_URL = PostgreSQL), and drives each with
`wrk -t1` at --connections on GET /api/developers/{id} and on GET /api/developers?specialty=S: per route, after a
second's warm-up each, --slices runs of --duration seconds each, the two processes taking turns in the order
A B B A A B ... (A picked at random), so that both see the machine as it is slice by slice (a 2-core machine that
other work shares changes speed by tens of per cent within seconds). A round's ratio is the pooled process's
requests over the direct one's. New processes each round: two processes of the same code differ by several per
cent for as long as they live. Printed: per route, the median of the rounds' pooled/direct ratios with their min
and max, the median requests/s of each, the worker's CPU per request and PgBouncer's share of a core while the
pooled runs ran (it is single-threaded: near 100% would make it the bottleneck).

DB_POOLER_PREPARED_STATEMENTS=true is not measured: it needs PgBouncer >= 1.21 with max_prepared_statements,
which 1.18 does not have.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from service.accounts.auth import TokenIssuer, build_auth
from service.core.settings import Settings
from tests.bench.__main__ import GET_LUA, LIST_LUA, load
from tests.bench.own_postgres import own_postgres, pgbouncer_pid
from tests.bench.servers import cpu_seconds, granian_apps, thread_cpu_seconds
from tests.bench.wrk_runs import wrk_run
from tests.pgbouncer import running

ROUTES = {"get": ("GET /api/developers/{id}", "/api/developers/"), "list": ("GET /api/developers?specialty=S", "")}


def pgbouncer_version() -> str:
    return subprocess.run(["/usr/sbin/pgbouncer", "--version"], capture_output=True, text=True).stdout.split("\n")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--duration", type=int, default=2, help="seconds of each wrk run (a slice)")
    parser.add_argument("--slices", type=int, default=4, help="wrk runs of each process on each route per round")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    began, load_before = time.monotonic(), os.getloadavg()
    rates: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}  # worker loop CPU µs per request
    bouncer: list[float] = []  # PgBouncer's CPU / wall during the pooled runs

    with own_postgres(max_connections=100) as pg, running(pg.tcp_url, pool_size=20) as pooler:
        asyncio.run(load(pg.tcp_url, args.rows))
        bouncer_pid = pgbouncer_pid(pooler.directory)
        secret = secrets.token_urlsafe(48)
        viewer = TokenIssuer(build_auth(Settings(secret_key=secret))).issue(1, "viewer")
        base = os.environ | {"SECRET_KEY": secret, "WORKER_IN_PROCESS": "false", "DB_MAX_OVERFLOW": "0"}
        envs = {
            "direct": base | {"DATABASE_URL": pg.tcp_url, "DB_POOLER": "none"},
            "pooled": base
            | {"DATABASE_URL": pooler.url(pg.tcp_url), "DATABASE_DIRECT_URL": pg.tcp_url, "DB_POOLER": "transaction"},
        }
        wrk_env = os.environ | {"ROWS": str(args.rows), "AUTH": f"Bearer {viewer}"}
        with tempfile.TemporaryDirectory() as tmp:
            scripts = {"get": Path(tmp) / "get.lua", "list": Path(tmp) / "list.lua"}
            scripts["get"].write_text(GET_LUA)
            scripts["list"].write_text(LIST_LUA)
            for round_ in range(args.rounds):
                with ExitStack() as stack:
                    urls, workers = granian_apps(stack, envs)
                    for route, (_, prefix) in ROUTES.items():
                        run_env = wrk_env | {"PREFIX": prefix or "/api/developers?specialty="}
                        for name in envs:  # warm: the pool opened, the first requests' imports and caches
                            wrk_run(urls[name], scripts[route], run_env, 1, args.connections)
                        # Short slices in the order A B B A A B ...: both see the same machine, slice by slice.
                        order = random.sample(list(envs), 2)
                        counts, loop_cpu, bouncer_cpu, bouncer_wall = (
                            dict.fromkeys(envs, 0),
                            dict.fromkeys(envs, 0.0),
                            0.0,
                            0.0,
                        )
                        for slice_ in range(args.slices):
                            for name in order if slice_ % 2 == 0 else order[::-1]:
                                loop_before, bouncer_before = (
                                    thread_cpu_seconds(workers[name]),
                                    cpu_seconds(bouncer_pid),
                                )
                                wall = time.monotonic()
                                run = wrk_run(urls[name], scripts[route], run_env, args.duration, args.connections)
                                assert run.non_2xx == 0, (name, route, run)
                                counts[name] += run.count
                                loop_cpu[name] += thread_cpu_seconds(workers[name]) - loop_before
                                if name == "pooled":
                                    bouncer_cpu += cpu_seconds(bouncer_pid) - bouncer_before
                                    bouncer_wall += time.monotonic() - wall
                        for name in envs:
                            rates.setdefault((name, route), []).append(counts[name] / (args.slices * args.duration))
                            cpu.setdefault((name, route), []).append(loop_cpu[name] / counts[name] * 1e6)
                        bouncer.append(bouncer_cpu / bouncer_wall)
                print(
                    f"  round {round_ + 1}: " + "  ".join(f"{k[0]} {k[1]} {v[-1]:.0f}" for k, v in rates.items()),
                    flush=True,
                )
        stats = asyncio.run(_stats(pooler.admin_url))

    print(
        f"\nCost of the hop: {args.rows:,} developers, wrk -t1 -c{args.connections}, {args.slices} slices of "
        f"{args.duration}s per process and route, {args.rounds} "
        f"rounds, new processes each round (granian, one worker, DB_POOL_SIZE 20); {pgbouncer_version()}, "
        f"transaction mode; {os.cpu_count()} CPUs; load average {load_before[0]:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end; {time.monotonic() - began:.0f} s"
    )
    print(
        f"{'route':<36}{'direct req/s':>13}{'pooled req/s':>13}{'pooled/direct':>15}{'min':>7}{'max':>7}"
        f"{'loop µs/req d/p':>20}"
    )
    for route, (label, _) in ROUTES.items():
        direct, pooled = rates["direct", route], rates["pooled", route]
        ratios = [p / d for p, d in zip(pooled, direct, strict=True)]
        loop = f"{statistics.median(cpu['direct', route]):.0f} / {statistics.median(cpu['pooled', route]):.0f}"
        print(
            f"{label:<36}{statistics.median(direct):>13.0f}{statistics.median(pooled):>13.0f}"
            f"{statistics.median(ratios):>15.2f}{min(ratios):>7.2f}{max(ratios):>7.2f}{loop:>20}"
        )
    print("pooled/direct: the median over the rounds of each round's ratio (target >= 0.8)")
    print(
        f"PgBouncer's CPU while the pooled runs ran: median {statistics.median(bouncer):.0%} of one core, "
        f"max {max(bouncer):.0%} (single-threaded: 100% would make it the bottleneck)"
    )
    print(f"PgBouncer SHOW STATS (devdir): {stats}")
    print("DB_POOLER_PREPARED_STATEMENTS=true: not measured, PgBouncer 1.18 has no max_prepared_statements (>= 1.21)")


async def _stats(admin_url: str) -> str:
    from tests.bench.own_postgres import admin_console

    rows = [row for row in await admin_console(admin_url, "SHOW STATS") if row.get("database") == "devdir"]
    keys = ("total_xact_count", "total_query_count", "total_received", "total_sent", "avg_xact_time", "avg_query_time")
    return ", ".join(f"{key} {rows[0][key]}" for key in keys if rows and key in rows[0])


if __name__ == "__main__":
    main()
