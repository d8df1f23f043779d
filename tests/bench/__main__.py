"""Read benchmark: the service's hot reads against a plain asyncpg handler, the price of the auth layer, and the
price of the metrics and request logs.

    uv run python -m tests.bench [--rows 100000] [--duration 4] [--rounds 5] [--connections 32,128]
        [--pairs 40] [--pair-duration 2]

Loads N developers (20 specialties spec00..spec19) into a fresh database (on TEST_DATABASE_URL's server, or an
embedded PostgreSQL) and serves, each with granian (one worker): the service (every request with a viewer's
bearer token), the same service without its observability (UNOBSERVED: no request counts or /metrics, no request
ids or log lines), the same service with its token check replaced by a fixed caller (tests/bench/noauth_app.py),
and the reference app. Drives each with wrk at each number of connections and prints requests/s and the ratios.
Then prices the observing on GET /api/developers/{id}: one process (tests/bench/switch_app.py) switched between
observed and not, pair after pair of short runs. granian picks its event loop by itself (uvloop, a dependency of
the service), the same for all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import secrets
import shutil
import statistics
import tempfile
from pathlib import Path

import httpx

from service.accounts.auth import TokenIssuer, build_auth
from service.core.settings import Settings
from tests.bench.servers import BIN, serving, thread_cpu_seconds, worker_pid
from tests.bench.wrk_runs import Run, spread, wrk_run
from tests.database import connect, fresh_database, server_url

SPECIALTIES = [f"spec{i:02d}" for i in range(20)]
EXCERPT = re.compile(
    r"devdir_requests_total|devdir_request_duration_seconds_(count|sum)|devdir_requests_in_progress |"
    r"devdir_request_duration_seconds_bucket\{le=\"0\.0(05|1|25)\",method=\"GET\",path=\"/api/developers/\{|"
    r"devdir_db_pool_(size|connections|checked_out|overflow|timeouts_total|wait_seconds_count) "
)
# The service without its metrics and request logs: what observing it costs is the difference.
UNOBSERVED = {"METRICS_ENABLED": "false", "LOG_REQUESTS": "false"}

LIST_LUA = """
wrk.headers["Authorization"] = os.getenv("AUTH")
local prefix = os.getenv("PREFIX")
local i = 0
request = function()
  i = (i + 1) % 20
  return wrk.format("GET", prefix .. string.format("spec%02d", i))
end
"""
GET_LUA = """
wrk.headers["Authorization"] = os.getenv("AUTH")
local prefix = os.getenv("PREFIX")
local n = tonumber(os.getenv("ROWS"))
local i = 0
request = function()
  i = (i * 7919 + 1) % n
  return wrk.format("GET", prefix .. tostring(i + 1))
end
"""


async def load(url: str, rows: int) -> None:
    conn = await connect(url)
    try:
        records = [(f"Dev {i:07d}", f"dev{i}@example.com", SPECIALTIES[i % 20]) for i in range(rows)]
        await conn.copy_records_to_table("developers", records=records, columns=["name", "email", "specialty"])
        await conn.execute("ANALYZE developers")
    finally:
        await conn.close()


def turns() -> list[str]:
    """One round's order: the service and its unobserved twin back to back, then the two apps whose ratio prices
    the auth layer; each pair, and each run in it, in a random order, so that no target always runs first, or
    right after the same one."""
    pairs = [random.sample(["service", "unobserved"], 2), random.sample(["noauth", "reference"], 2)]
    random.shuffle(pairs)
    return [name for pair in pairs for name in pair]


def wrk(url: str, script: Path, env: dict[str, str], duration: int, connections: int) -> float:
    return wrk_run(url, script, env, duration, connections).rate


def clean_run(url: str, script: Path, env: dict[str, str], duration: int, connections: int) -> tuple[float, int]:
    """requests/s, and how many requests were answered, of a run that must see no errors (the observing pairs)."""
    run = wrk_run(url, script, env, duration, connections)
    if run.non_2xx or run.socket_errors:
        raise SystemExit(f"wrk saw errors at {connections} connections: {run}")
    return run.rate, run.count


def observing(
    url: str, script: Path, env: dict[str, str], worker: int, pairs: int, duration: int, connections: int
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Pairs of runs of one process (tests/bench/switch_app.py), its observing on for one run and off for the
    other, in a random order each pair: (requests/s, CPU µs of its event loop's thread per request) of each."""
    on: list[tuple[float, float]] = []
    off: list[tuple[float, float]] = []
    for _ in range(pairs):
        for state in random.sample(["1", "0"], 2):
            assert httpx.get(f"{url}/observing?on={state}", timeout=10).text == ("on" if state == "1" else "off")
            before = thread_cpu_seconds(worker)
            rate, count = clean_run(url, script, env, duration, connections)
            cpu = (thread_cpu_seconds(worker) - before) / count * 1e6
            (on if state == "1" else off).append((rate, cpu))
    return on, off


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=4, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds: one run per target and route each")
    parser.add_argument(
        "--pairs", type=int, default=40, help="pairs of runs pricing the observing, per level (0: not priced)"
    )
    parser.add_argument("--pair-duration", type=int, default=2, help="seconds of each run of those pairs")
    parser.add_argument("--connections", default="32,128,512", help="comma-separated numbers of wrk connections")
    args = parser.parse_args()
    levels = [int(level) for level in args.connections.split(",")]
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    with server_url() as server, fresh_database(server) as url, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(load(url, args.rows))
        scripts = {"list": Path(tmp) / "list.lua", "get": Path(tmp) / "get.lua"}
        scripts["list"].write_text(LIST_LUA)
        scripts["get"].write_text(GET_LUA)
        secret = secrets.token_urlsafe(48)
        viewer = TokenIssuer(build_auth(Settings(secret_key=secret))).issue(1, "viewer")
        env = os.environ | {
            "DATABASE_URL": url,
            "SECRET_KEY": secret,
            "ROWS": str(args.rows),
            "AUTH": f"Bearer {viewer}",
        }
        granian = [str(BIN / "granian"), "--interface", "asgi", "--workers", "1"]
        factory = [*granian, "--factory", "service.app:create_app"]
        targets = {
            "service": ([*factory, "--port", "8811"], 8811, "/api/developers"),
            "unobserved": ([*factory, "--port", "8814"], 8814, "/api/developers"),
            "noauth": ([*granian, "--port", "8813", "tests.bench.noauth_app:app"], 8813, "/api/developers"),
            "reference": ([*granian, "--port", "8812", "tests.bench.reference_app:app"], 8812, "/ref/developers"),
        }
        runs: dict[tuple[str, str, int], list[Run]] = {}
        scraped = ""

        def warm(port: int, path: str) -> None:  # pools, statement caches
            for route, query in (("list", "?specialty="), ("get", "/")):
                wrk(f"http://127.0.0.1:{port}", scripts[route], env | {"PREFIX": path + query}, 2, max(levels))

        def serve(servers: contextlib.ExitStack, name: str) -> None:
            command, port, path = targets[name]
            # The auth layer is priced between two apps that are both unobserved.
            servers.enter_context(serving(command, env | ({} if name == "service" else UNOBSERVED), port))
            warm(port, path)

        with contextlib.ExitStack() as servers:
            # All serve at once (an idle server costs nothing) and take turns, run after run, so a change in the
            # machine's load between runs falls on all of them alike. The service and its unobserved twin are new
            # processes each round: two processes of the very same code differ here by up to 10% in requests/s
            # for as long as they live (memory layout, hash seeds), more than the observing costs.
            for name in ("noauth", "reference"):
                serve(servers, name)
            for round_ in range(1, args.rounds + 1):
                with contextlib.ExitStack() as pair:
                    for name in ("service", "unobserved"):
                        serve(pair, name)
                    for route, query in (("list", "?specialty="), ("get", "/")):
                        for level in levels:
                            for name in turns():
                                _, port, path = targets[name]
                                run_env = env | {"PREFIX": path + query}
                                url = f"http://127.0.0.1:{port}"
                                run = wrk_run(url, scripts[route], run_env, args.duration, level)
                                runs.setdefault((name, route, level), []).append(run)
                                print(
                                    f"round {round_} {route:<5}{level:>4} {name:<11}{run.rate:>7.0f} req/s"
                                    f"  non-2xx {run.non_2xx} {run.socket_errors}",
                                    flush=True,
                                )
                    scraped = httpx.get("http://127.0.0.1:8811/metrics", timeout=10).text

        # What the metrics and request logs cost, within one process switched between observed and not.
        priced: dict[int, tuple[list[tuple[float, float]], list[tuple[float, float]]]] = {}
        if args.pairs:
            switchable = [*granian, "--port", "8815", "tests.bench.switch_app:app"]
            with serving(switchable, env, 8815) as process:
                warm(8815, "/api/developers")
                worker = worker_pid(process.pid)
                get_env = env | {"PREFIX": "/api/developers/"}
                for level in levels:
                    priced[level] = observing(
                        "http://127.0.0.1:8815", scripts["get"], get_env, worker, args.pairs, args.pair_duration, level
                    )

    show_runs(runs, levels, args.rows, args.duration, args.rounds)
    if priced:
        show_observing(priced, args.pairs, args.pair_duration)
    print("\nThe service's /metrics after the runs (excerpt: the request counts and the pool):")
    print("\n".join(line for line in scraped.splitlines() if EXCERPT.match(line)))


def show_runs(
    runs: dict[tuple[str, str, int], list[Run]], levels: list[int], rows: int, duration: int, rounds: int
) -> None:
    """Medians of requests/s over the rounds; vs ref is the median (min max) over the rounds of each round's
    service/reference ratio, their runs taken back to back; non-2xx answers summed over the rounds."""
    print(f"\n{rows} rows, wrk -t1 -d{duration}s, {rounds} rounds, one granian worker each; requests/s, medians")
    print(
        f"{'route':<44}{'clients':>8}{'service':>9}{'unobserved':>11}{'no auth':>9}{'reference':>10}"
        f"{'auth cost':>10}  {'vs ref (min max)':<19}{'non-2xx svc/unobs/noauth/ref'}"
    )
    routes = (("list", "GET /api/developers?specialty=S (100 rows)"), ("get", "GET /api/developers/{id}"))
    names = ("service", "unobserved", "noauth", "reference")
    for route, label in routes:
        for level in levels:
            ours, unobserved, bare, ref = (statistics.median(r.rate for r in runs[n, route, level]) for n in names)
            pairs = zip(runs["service", route, level], runs["reference", route, level], strict=True)
            ratios = [ours_run.rate / ref_run.rate for ours_run, ref_run in pairs]
            failed = "/".join(str(sum(r.non_2xx for r in runs[n, route, level])) for n in names)
            print(
                f"{label:<44}{level:>8}{ours:>9.0f}{unobserved:>11.0f}{bare:>9.0f}{ref:>10.0f}"
                f"{1 - unobserved / bare:>9.1%}  {spread(ratios):<19}{failed}"
            )
    print("auth cost = how much slower the service is with its bearer-token check than without (target < 15%),")
    print("  between the two unobserved apps")
    print("vs ref = service / reference per round (targets: get >= 0.85, list >= 0.9)")


def show_observing(
    priced: dict[int, tuple[list[tuple[float, float]], list[tuple[float, float]]]], pairs: int, duration: int
) -> None:
    print(
        f"\nObserving: GET /api/developers/{{id}}, one process with its metrics and request logs on and off, "
        f"{pairs} pairs of {duration}-second runs"
    )
    print(f"{'clients':>8}{'on req/s':>10}{'off req/s':>11}{'observing':>11}{'(mean)':>8}{'loop CPU/request':>24}")
    for level, (on, off) in priced.items():
        slower = [1 - a[0] / b[0] for a, b in zip(on, off, strict=True)]
        cpu = [a[1] / b[1] - 1 for a, b in zip(on, off, strict=True)]
        on_cpu, off_cpu = statistics.median(a[1] for a in on), statistics.median(b[1] for b in off)
        print(
            f"{level:>8}{statistics.median(a[0] for a in on):>10.0f}{statistics.median(b[0] for b in off):>11.0f}"
            f"{statistics.median(slower):>10.1%}{statistics.mean(slower):>8.1%}"
            f"{on_cpu:>9.0f} vs {off_cpu:.0f} µs ({statistics.median(cpu):+.1%})"
        )
    print(
        "observing = how much slower with the metrics and request logs than without (target <= 5%): the median over\n"
        "  the pairs of each pair's ratio; loop CPU = CPU time of the worker's event-loop thread per request (medians)"
    )


if __name__ == "__main__":
    main()
