"""Memory after database faults during imports: RSS of the API's granian worker over repeated runs of 5,000-row
NDJSON imports while the service's busy backends are terminated every 50 ms, then after a rest.

    uv run python -m tests.bench.faulted_imports [--runs 4] [--seconds 10] [--idle 60] [--clients 8]

`devdir run` on a fresh database (TEST_DATABASE_URL's server, or an embedded PostgreSQL); the load is
tests/developers/import_faults.py's, as in the test that bounds it (tests/developers/test_bulk_memory.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.bench.servers import memory_mb, worker_pid
from tests.database import fresh_database, server_url
from tests.developers.feed_faults_support import devdir_process
from tests.developers.import_faults import faulted_imports


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--idle", type=float, default=60)
    parser.add_argument("--clients", type=int, default=8)
    options = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        server_url() as server,
        fresh_database(server) as url,
        devdir_process(url, Path(tmp) / "devdir.log") as base,
    ):
        worker = worker_pid(os.getpid())
        print(f"granian worker {worker}: RSS {memory_mb(worker):.0f} MB after start", flush=True)
        for run in range(1, options.runs + 1):
            statuses = asyncio.run(faulted_imports(base, url, until=_after(options.seconds), clients=options.clients))
            answers = dict(sorted(statuses.items()))
            print(f"run {run}: RSS {memory_mb(worker):.0f} MB, answers {answers}", flush=True)
        time.sleep(options.idle)
        print(f"after {options.idle:.0f} s idle: RSS {memory_mb(worker):.0f} MB")


def _after(seconds: float) -> Callable[[Counter[int]], bool]:
    end = time.monotonic() + seconds
    return lambda _statuses: time.monotonic() > end


if __name__ == "__main__":
    main()
