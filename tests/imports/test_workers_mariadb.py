"""Worker processes on MariaDB: a job whose worker is SIGKILLed midway is finished by another exactly once; two
workers never run one job at the same time (the queue entry's row lock: a second taker skips it); SIGTERM past
WORKER_SHUTDOWN_SECONDS gives the running job back."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator

import httpx
import pytest

from service.core.settings import Settings
from tests import mariadb
from tests.developers.api import people
from tests.imports.api import submitted, until_job
from tests.imports.mariadb_jobs import client_of, queue_size, row_5000_held
from tests.imports.workers import health, worker_process

pytestmark = pytest.mark.slow

ROWS = 30_000


@pytest.fixture
async def idle(mariadb_settings: Settings, mariadb_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's client of an app on MariaDB with no worker: jobs go to the worker processes a test starts."""
    async with client_of(mariadb_settings, mariadb_url) as client:
        yield client


async def count(url: str, query: str) -> int:
    return int(await mariadb.fetchval(url, query))


async def test_a_job_whose_worker_is_killed_is_finished_by_another_exactly_once(
    idle: httpx.AsyncClient, mariadb_url: str
) -> None:
    async with row_5000_held(mariadb_url), worker_process(mariadb_url) as first:
        job_id = await submitted(idle, "ndjson", people(ROWS))
        midway = await until_job(idle, job_id, lambda j: j["status"] == "running" and j["rows_done"] > 0, "running")
        await first.kill()
    assert await queue_size(mariadb_url) == 1  # the entry outlived its worker: InnoDB rolled its transaction back
    async with worker_process(mariadb_url) as second:
        done = await until_job(idle, job_id)
        await second.logged(job_id, "succeeded")
        finished = [(worker, what) for job, what, worker, _ in second.jobs() if job == job_id and what == "succeeded"]
    assert done["status"] == "succeeded", done
    assert done["created"] == ROWS
    assert await count(mariadb_url, "SELECT count(*) FROM developers") == ROWS
    assert await count(mariadb_url, "SELECT count(DISTINCT email_lower) FROM developers") == ROWS
    assert await count(mariadb_url, f"SELECT attempts FROM import_jobs WHERE id = {job_id}") == 2
    assert len(finished) == 1
    assert not [entry for entry in first.jobs() if entry[1] == "succeeded"]
    assert await queue_size(mariadb_url) == 0
    print(f"\njob {job_id}: worker {first.pid} SIGKILLed at {midway['rows_done']} rows done; finished by {second.pid}")


async def test_two_workers_never_run_the_same_job_at_once(idle: httpx.AsyncClient, mariadb_url: str) -> None:
    jobs_count, rows = 8, 3000
    async with worker_process(mariadb_url) as one, worker_process(mariadb_url) as two:
        ids = [await submitted(idle, "csv", people(rows, start=i * rows)) for i in range(jobs_count)]
        for job_id in ids:
            assert (await until_job(idle, job_id))["status"] == "succeeded"
    log = one.jobs() + two.jobs()  # read once both have stopped: a worker writes its last lines as it exits
    runs: dict[int, list[tuple[str, str, float]]] = defaultdict(list)
    for job, what, worker, at in sorted(log, key=lambda entry: entry[3]):
        runs[job].append((what, worker, at))
    for job_id in ids:
        started = [entry for entry in runs[job_id] if entry[0] == "started"]
        succeeded = [entry for entry in runs[job_id] if entry[0] == "succeeded"]
        assert len(started) == 1, runs[job_id]  # never started twice, so never run twice at once
        assert len(succeeded) == 1, runs[job_id]
        assert started[0][1] == succeeded[0][1]
    assert await count(mariadb_url, "SELECT count(*) FROM developers") == jobs_count * rows
    assert await count(mariadb_url, "SELECT max(attempts) FROM import_jobs") == 1


async def test_a_running_job_is_held_from_a_second_worker(idle: httpx.AsyncClient, mariadb_url: str) -> None:
    """One job, two workers: while the first imports it (held midway), the second polls past it (it takes a newer
    job) and never takes it."""
    async with worker_process(mariadb_url) as one:
        async with row_5000_held(mariadb_url):
            job_id = await submitted(idle, "ndjson", people(ROWS))
            await until_job(idle, job_id, lambda j: j["status"] == "running" and j["rows_done"] > 0, "running")
            async with worker_process(mariadb_url) as two:
                await one.logged(job_id, "started")
                # The second worker's polls meet the held job first (the oldest), skip it, and take the next.
                other = await submitted(idle, "json", people(10, start=100_000))
                await two.logged(other, "succeeded", within=60)
                assert await count(mariadb_url, f"SELECT attempts FROM import_jobs WHERE id = {job_id}") == 1
            assert not [entry for entry in two.jobs() if entry[0] == job_id]
        done = await until_job(idle, job_id)
    assert done["status"] == "succeeded", done
    assert await count(mariadb_url, f"SELECT attempts FROM import_jobs WHERE id = {job_id}") == 1


async def test_sigterm_gives_a_running_job_back_to_the_queue(idle: httpx.AsyncClient, mariadb_url: str) -> None:
    async with row_5000_held(mariadb_url):
        async with worker_process(mariadb_url, WORKER_SHUTDOWN_SECONDS="1") as first:
            assert await health(first, "/ready") == 200
            job_id = await submitted(idle, "ndjson", people(ROWS))
            await until_job(idle, job_id, lambda j: j["status"] == "running" and j["rows_done"] > 0, "running")
        assert first.process.returncode == 0
        assert [entry[1] for entry in first.jobs()] == ["started", "requeued"]
        back = await until_job(idle, job_id, lambda j: j["status"] == "queued", "queued again")
        assert back["rows_done"] == 0
        assert await count(mariadb_url, f"SELECT attempts FROM import_jobs WHERE id = {job_id}") == 0
    assert await count(mariadb_url, "SELECT count(*) FROM developers") == 0
    async with worker_process(mariadb_url):
        done = await until_job(idle, job_id)
    assert done["status"] == "succeeded", done
    assert await count(mariadb_url, "SELECT count(*) FROM developers") == ROWS
