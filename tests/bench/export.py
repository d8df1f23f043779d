"""Export benchmark: GET /api/developers/export over HTTP against the same COPY straight from asyncpg, in one run.

    uv run python -m tests.bench.export [--rows 1000000] [--repeat 3] [--slow-rate 10M]

On a fresh database (TEST_DATABASE_URL's server, or an embedded PostgreSQL) holding --rows developers, with the
service served by `devdir run` (one granian worker), for each format (csv, ndjson), alternating, best of --repeat:

  http   curl fetches the export (to /dev/null), timed from its start to the body's last byte
  raw    asyncpg's copy_from_query of the very statement the export runs, into a sink that only counts bytes:
         no HTTP, no snapshot transaction; the floor the route is held to (target: http >= 0.8 x raw)

Both must deliver the same number of bytes, or the run stops. Peak RSS is the granian worker's VmHWM (target
< 150 MB), reset (/proc/<pid>/clear_refs) before the measured runs; then once more around one NDJSON export
fetched by a client limited to --slow-rate, whose backpressure must keep the worker's memory as flat.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import time
from pathlib import Path

from service.accounts.auth import TokenIssuer, build_auth
from service.core.settings import Settings
from service.developers.export.service import Format, copy_options, copy_query
from tests.bench.servers import BIN, memory_mb, serving, worker_pid
from tests.database import connect, fresh_database, run_sql, server_url

PORT = 8831
SECRET = secrets.token_urlsafe(48)
AUTH = f"Bearer {TokenIssuer(build_auth(Settings(secret_key=SECRET))).issue(1, 'viewer')}"
FORMATS: tuple[Format, ...] = ("csv", "ndjson")


async def load(url: str, rows: int) -> None:
    conn = await connect(url)
    try:
        for first in range(0, rows, 100_000):
            records = [
                (f"Developer {i:07d}", f"dev{i}@bench.example.com", f"spec{i % 20:02d}")
                for i in range(first, min(first + 100_000, rows))
            ]
            await conn.copy_records_to_table("developers", records=records, columns=["name", "email", "specialty"])
    finally:
        await conn.close()
    await run_sql(url, "VACUUM ANALYZE developers")


def http_export(fmt: Format, rate: str | None = None) -> tuple[float, int]:
    """Seconds and bytes of one export fetched by curl."""
    command = ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}", "-H", f"Authorization: {AUTH}"]
    if rate:
        command += ["--limit-rate", rate]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, f"http://127.0.0.1:{PORT}/api/developers/export?format={fmt}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, int(done.stdout)


async def raw_copy(url: str, fmt: Format) -> tuple[float, int]:
    """Seconds and bytes of the export's COPY, straight from asyncpg."""
    conn = await connect(url)
    size = 0

    async def sink(piece: bytes) -> None:
        nonlocal size
        size += len(piece)

    try:
        started = time.perf_counter()
        await conn.copy_from_query(copy_query(fmt, filtered=False), output=sink, **copy_options(fmt))
        return time.perf_counter() - started, size
    finally:
        await conn.close()


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM back to the current RSS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slow-rate", default="10M", help="curl --limit-rate of the slow client (bytes/s)")
    args = parser.parse_args()

    runs: dict[tuple[Format, str], list[float]] = {(f, kind): [] for f in FORMATS for kind in ("http", "raw")}
    with server_url() as server, fresh_database(server) as url:
        asyncio.run(load(url, args.rows))
        env = os.environ | {"DATABASE_URL": url, "SECRET_KEY": SECRET}
        service = [str(BIN / "devdir"), "run", "--port", str(PORT), "--workers", "1"]
        with serving(service, env, PORT) as process:
            worker = worker_pid(process.pid)
            http_export("csv")  # warm-up: the pool's first connection, asyncpg's first statements
            rss_start = memory_mb(worker)
            reset_peak(worker)
            for _ in range(args.repeat):
                for fmt in FORMATS:
                    http_seconds, http_bytes = http_export(fmt)
                    raw_seconds, raw_bytes = asyncio.run(raw_copy(url, fmt))
                    if http_bytes != raw_bytes:
                        raise SystemExit(f"{fmt}: the export sent {http_bytes} bytes, the COPY {raw_bytes}")
                    runs[fmt, "http"].append(http_seconds)
                    runs[fmt, "raw"].append(raw_seconds)
            peak = memory_mb(worker, "VmHWM")
            reset_peak(worker)
            slow_seconds, slow_bytes = http_export("ndjson", args.slow_rate)
            slow_peak = memory_mb(worker, "VmHWM")

    print(f"\nExport {args.rows:,} developers (best of {args.repeat}, alternating; rows/s)")
    print(f"  {'format':<8}{'path':<38}{'rows/s':>11}{'best s':>9}   each run, s")
    for fmt in FORMATS:
        best = {kind: min(runs[fmt, kind]) for kind in ("http", "raw")}
        for kind, label in (("http", "GET /api/developers/export (granian)"), ("raw", "asyncpg COPY TO, no HTTP")):
            each = " ".join(f"{s:.2f}" for s in runs[fmt, kind])
            print(f"  {fmt:<8}{label:<38}{args.rows / best[kind]:>11,.0f}{best[kind]:>9.2f}   {each}")
        print(f"  {fmt:<8}{'http/raw':<38}{best['raw'] / best['http']:>11.2f}   (target >= 0.8)")
    print(
        f"  granian worker RSS: {rss_start:.0f} MB at start, peak (VmHWM) {peak:.0f} MB over the runs (target < 150 MB)"
    )
    print(
        f"  peak over one NDJSON export read at {args.slow_rate}B/s "
        f"({slow_bytes / 1e6:.0f} MB in {slow_seconds:.1f} s): {slow_peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
