"""The API worker's memory when database faults cut imports short: an import answered 503 must leave nothing of
itself behind. Measured as the probe that found it did: RSS of `devdir run`'s granian worker while clients import
5,000-row NDJSON bodies and their backends are terminated every 50 ms.

Each such import used to keep its rows (through its error's traceback, in reference cycles: about 1 MB per 503,
never given back), so the worker grew without bound under faults. Warmed up, it now stays flat (a few MB).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bench.servers import memory_mb, worker_pid
from tests.database import fresh_database
from tests.developers.feed_faults_support import devdir_process
from tests.developers.import_faults import faulted_imports
from tests.postgresql_only import SESSIONS

pytestmark = [pytest.mark.slow, SESSIONS]  # starts `devdir run`

WARM_UP = 50  # imports answered 503 before the baseline: the worker's caches and working set are made by then
FAULTED = 150  # imports answered 503 after it: they used to keep 58 to 223 MB, and now keep 3 to 7
GROWTH_MB = 30


@pytest.fixture
def devdir(pg_server: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`devdir run` on a fresh database: (database URL, base URL)."""
    with fresh_database(pg_server) as url, devdir_process(url, tmp_path / "devdir.log") as base:
        yield url, base


async def test_imports_cut_by_killed_backends_leave_no_memory_behind(devdir: tuple[str, str]) -> None:
    url, base = devdir
    worker = worker_pid(os.getpid())  # the granian worker of the one `devdir run` this test started
    warm_up = await faulted_imports(base, url, until=lambda statuses: statuses[503] >= WARM_UP)
    baseline = memory_mb(worker)
    statuses = await faulted_imports(base, url, until=lambda statuses: statuses[503] >= FAULTED)
    grown = memory_mb(worker) - baseline
    print(f"\nRSS {baseline:.0f} MB after {dict(warm_up)}, then +{grown:.0f} MB after {dict(statuses)}")
    # 0: a connection closed with no answer (about one import in 300 under these faults, before the fix as well)
    assert set(warm_up) | set(statuses) <= {0, 201, 503}
    assert grown < GROWTH_MB, f"the worker grew by {grown:.0f} MB over {statuses[503]} imports answered 503"
