"""Pool sizing benchmark: requests/s and p99 latency of the hot reads for each DB_POOL_SIZE and client concurrency.

    uv run python -m tests.bench.pool [--rows 100000] [--duration 5] [--pool-sizes 1,2,4,8,16,32]
                                      [--concurrency 8,32,128,256] [--out bench-results]

Loads --rows developers into a fresh database (on TEST_DATABASE_URL's server, or an embedded PostgreSQL), then for
each pool size serves the service as production does (`devdir run --workers 1`, DB_MAX_OVERFLOW=0 so the pool is
exactly that size; DB_POOL_TIMEOUT as in the environment) and drives it with wrk at each concurrency: half
GET /api/developers/{id} with random ids, half GET /api/developers?specialty=specNN. It prints a table and writes
pool-sizing.csv and pool-sizing.png under --out.

Reading the chart for your own database (point TEST_DATABASE_URL at a server like the production one: the curves
measure what that server can do in parallel):
- Throughput stops growing once the pool covers what the database and the worker's CPU can do in parallel. The
  smallest pool on that plateau is the size to pick; beyond it a bigger pool only adds connections, memory on the
  database server and contention, with no more requests/s.
- Too small a pool shows as p99 growing with concurrency (requests queue for a connection), and finally as 503s
  (red X): no connection came free within DB_POOL_TIMEOUT. A red X's requests/s counts those quick 503s too.
- The pool is per replica (one granian worker per pod): pool size x replicas must stay under max_connections.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import math
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter

from service.accounts.auth import TokenIssuer, build_auth
from service.core.settings import Settings
from tests.bench.__main__ import load
from tests.bench.servers import BIN, serving
from tests.database import fresh_database, server_url

FIRST_PORT = 8831
FIELDS = ("pool_size", "concurrency", "requests_per_s", "p50_ms", "p99_ms", "non_2xx")
MIX_LUA = """
wrk.headers["Authorization"] = os.getenv("AUTH")
local rows = tonumber(os.getenv("ROWS"))
local i = 0
math.randomseed(os.time())
request = function()
  i = i + 1
  if i % 2 == 0 then
    return wrk.format("GET", "/api/developers/" .. math.random(rows))
  end
  return wrk.format("GET", string.format("/api/developers?specialty=spec%02d", math.random(0, 19)))
end
"""
# wrk prints latencies with the unit it finds readable.
TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}

Result = dict[str, float]


def ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def latency_ms(output: str, percentile: int) -> float:
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    assert match, output
    return float(match.group(1)) * TO_MS[match.group(2)]


def wrk(port: int, script: Path, env: dict[str, str], duration: int, connections: int, timeout: int) -> Result:
    # --timeout above DB_POOL_TIMEOUT: a request starved of a connection must come back as the service's 503,
    # not be counted by wrk as a client-side timeout.
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", f"--timeout={timeout}s", "--latency"]
    command += ["-s", str(script), f"http://127.0.0.1:{port}"]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    if errors := re.search(r"Socket errors: .*", output):
        print(f"  wrk -c{connections}: {errors.group(0)}", flush=True)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    assert rate, output
    return {
        "requests_per_s": float(rate.group(1)),
        "p50_ms": latency_ms(output, 50),
        "p99_ms": latency_ms(output, 99),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def chart(results: list[Result], path: Path, title: str) -> None:
    figure = Figure(figsize=(14, 5), layout="constrained")
    FigureCanvasAgg(figure)
    throughput, latency = figure.subplots(1, 2)
    pools = sorted({int(r["pool_size"]) for r in results})
    for index, pool in enumerate(pools):
        points = sorted((r for r in results if r["pool_size"] == pool), key=lambda r: r["concurrency"])
        colour = colormaps["viridis"](0.9 * index / max(len(pools) - 1, 1))  # 0.9: the palest yellow is unreadable
        x = [r["concurrency"] for r in points]
        throughput.plot(x, [r["requests_per_s"] for r in points], "o-", color=colour, label=f"pool {pool}")
        latency.plot(x, [r["p99_ms"] for r in points], "o-", color=colour, label=f"pool {pool}")
    starved = [r for r in results if r["non_2xx"] > 0]
    for axes, field in ((throughput, "requests_per_s"), (latency, "p99_ms")):
        axes.scatter(
            [r["concurrency"] for r in starved], [r[field] for r in starved], marker="X", s=140, c="red", zorder=3
        )
        concurrency = sorted({int(r["concurrency"]) for r in results})
        axes.set_xscale("log", base=2)
        axes.set_xticks(concurrency, [str(c) for c in concurrency])
        axes.set_xlabel("client concurrency (wrk connections)")
        axes.grid(True, alpha=0.3)
    throughput.set_ylabel("requests/s")
    throughput.set_ylim(bottom=0)
    throughput.set_title("Throughput (higher is better)")
    latency.set_yscale("log")
    # Plain numbers (20, 50, 200) read faster than the default 2x10^1; minor ticks are labelled only when the
    # axis spans too few decades for the major ones to be enough.
    latency.yaxis.set_major_formatter(LogFormatter())
    latency.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    latency.set_ylabel("p99 latency (ms)")
    latency.set_title("p99 latency (lower is better)")
    starved_key = Line2D([], [], marker="X", color="red", linestyle="", markersize=10, label="503s (pool starved)")
    handles, _ = throughput.get_legend_handles_labels()
    # Outside the panels: a legend inside would hide the high-concurrency points, where the story is.
    figure.legend(handles=[*handles, starved_key], loc="outside right center", fontsize="small")
    figure.suptitle(title)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk per point")
    parser.add_argument("--pool-sizes", type=ints, default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--concurrency", type=ints, default=[8, 32, 128, 256])
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="directory for the CSV and PNG")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    pool_timeout = Settings.from_env().db_pool_timeout
    wrk_timeout = math.ceil(pool_timeout) + 5

    results: list[Result] = []
    with server_url() as server, fresh_database(server) as url, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(load(url, args.rows))
        script = Path(tmp) / "mix.lua"
        script.write_text(MIX_LUA)
        secret = secrets.token_urlsafe(48)
        viewer = TokenIssuer(build_auth(Settings(secret_key=secret))).issue(1, "viewer")
        env = os.environ | {"DATABASE_URL": url, "SECRET_KEY": secret, "DB_MAX_OVERFLOW": "0"}
        wrk_env = os.environ | {"ROWS": str(args.rows), "AUTH": f"Bearer {viewer}"}
        print(f"{'pool':>5}{'conc':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}", flush=True)
        # A port per server: the previous one may still be closing its socket when the next one starts.
        for port, pool in enumerate(args.pool_sizes, start=FIRST_PORT):
            command = [str(BIN / "devdir"), "run", "--port", str(port), "--workers", "1"]
            with serving(command, env | {"DB_POOL_SIZE": str(pool)}, port):
                # Warm-up at the highest concurrency: opens every pooled connection, fills statement caches.
                wrk(port, script, wrk_env, 2, max(args.concurrency), wrk_timeout)
                for connections in args.concurrency:
                    result = wrk(port, script, wrk_env, args.duration, connections, wrk_timeout)
                    result |= {"pool_size": pool, "concurrency": connections}
                    results.append(result)
                    print(
                        f"{pool:>5}{connections:>6}{result['requests_per_s']:>10.0f}{result['p50_ms']:>9.2f}"
                        f"{result['p99_ms']:>9.2f}{result['non_2xx']:>9.0f}",
                        flush=True,
                    )

    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "pool-sizing.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)
    title = (
        f"{args.rows:,} developers, devdir run --workers 1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT={pool_timeout:g}s, "
        f"wrk -t1 -d{args.duration}s, hot-read mix"
    )
    chart(results, args.out / "pool-sizing.png", title)
    print(f"\nwrote {args.out / 'pool-sizing.csv'} and {args.out / 'pool-sizing.png'}")
    for connections in args.concurrency:
        points = [r for r in results if r["concurrency"] == connections and not r["non_2xx"]]
        if points:
            best = max(r["requests_per_s"] for r in points)
            enough = min(int(r["pool_size"]) for r in points if r["requests_per_s"] >= 0.95 * best)
            print(f"concurrency {connections}: smallest pool within 5% of the best requests/s, no 503s: {enough}")


if __name__ == "__main__":
    main()
