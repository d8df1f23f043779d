"""Slow-header (slowloris) benchmark: how long `/health` takes on `devdir run` while N connections trickle headers.

    uv run python -m tests.bench.slow_headers [--connections 1100] [--seconds 60] [--byte-every 3]

Serves the service with `devdir run` as it is configured (one granian worker) on a fresh database (TEST_DATABASE_URL's
server, or an embedded PostgreSQL), then opens --connections slow-header connections (tests/slow_headers.py: a
request line and part of a header, then a byte every --byte-every seconds; one the server closes is reopened at
once). For --seconds it asks `/health` once a second on a new connection (10 s timeout) and prints how long each
answer took, and the worker's resident memory and open files; the open-files limits of this client and of the
server's worker are printed first, since either one caps the connections.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import time
from pathlib import Path

from tests.bench.servers import BIN, memory_mb, serving, worker_pid
from tests.database import fresh_database, server_url
from tests.processes import free_port
from tests.slow_headers import SlowHeaders, allow_open_files, health_seconds

HEALTH_TIMEOUT = 10.0


def open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def open_files_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return " / ".join(line.split()[3:5])
    return "?"


def describe(samples: list[float | None]) -> str:
    answered = sorted(s for s in samples if s is not None)
    timed_out = len(samples) - len(answered)
    if not answered:
        return f"0/{len(samples)} answered within {HEALTH_TIMEOUT:.0f} s"
    return (
        f"{len(answered)}/{len(samples)} answered within {HEALTH_TIMEOUT:.0f} s ({timed_out} timed out); "
        f"median {statistics.median(answered) * 1000:.0f} ms, max {answered[-1] * 1000:.0f} ms"
    )


async def attack(port: int, worker: int, args: argparse.Namespace) -> None:
    base = f"http://127.0.0.1:{port}"
    idle = [await health_seconds(base, HEALTH_TIMEOUT) for _ in range(5)]
    print(f"/health with no slow client: {describe(idle)}")
    slow = SlowHeaders("127.0.0.1", port, args.connections, args.byte_every)
    async with slow.running():
        await slow.until_open(30)
        print(f"{slow.open} slow-header connections open; worker holds {open_files(worker)} files")
        samples: list[float | None] = []
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            samples.append(await health_seconds(base, HEALTH_TIMEOUT))
            await asyncio.sleep(max(0.0, 1 - (time.monotonic() - started)))
        print(f"/health under {args.connections} slow-header connections for {args.seconds} s: {describe(samples)}")
        print(
            f"  slow connections opened {slow.opened}, closed by the server {slow.closed_by_server}; "
            f"worker RSS {memory_mb(worker):.0f} MB, {open_files(worker)} open files"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1100)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--byte-every", type=float, default=3.0)
    args = parser.parse_args()
    soft = allow_open_files(args.connections * 2 + 256)
    print(f"client open-files limit {soft}")
    port = free_port()
    with server_url() as server, fresh_database(server) as url:
        env = os.environ | {"DATABASE_URL": url, "SECRET_KEY": secrets.token_urlsafe(48)}
        command = [str(BIN / "devdir"), "run", "--port", str(port)]
        with serving(command, env, port) as process:
            worker = worker_pid(process.pid)
            print(f"server worker {worker}: open-files limit (soft / hard) {open_files_limit(worker)}")
            asyncio.run(attack(port, worker, args))


if __name__ == "__main__":
    main()
