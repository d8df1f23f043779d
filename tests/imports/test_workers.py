"""Worker processes: a job whose worker is SIGKILLed is finished by another, exactly once; two workers never run
one job at the same time; SIGTERM past WORKER_SHUTDOWN_SECONDS gives the running job back."""

from __future__ import annotations

from collections import defaultdict

import httpx
import pytest

from tests.database import fetchval
from tests.developers.api import people
from tests.imports.api import submitted, until_job
from tests.imports.faults import hold_row_5000
from tests.imports.workers import health, worker_process

pytestmark = pytest.mark.slow

ROWS = 50_000


async def test_a_job_whose_worker_is_killed_is_finished_by_another_exactly_once(
    idle: httpx.AsyncClient, database_url: str
) -> None:
    blocker = await hold_row_5000(database_url)
    try:
        async with worker_process(database_url) as first:
            job_id = await submitted(idle, "ndjson", people(ROWS))
            midway = await until_job(idle, job_id, lambda j: j["status"] == "running" and j["rows_done"] > 0, "running")
            await first.kill()
        await blocker.rollback()
    finally:
        await blocker.close()
    async with worker_process(database_url) as second:
        done = await until_job(idle, job_id)
        await second.logged(job_id, "succeeded")
        finished = [(worker, what) for job, what, worker, _ in second.jobs() if job == job_id and what == "succeeded"]
    assert done["status"] == "succeeded", done
    assert done["created"] == ROWS
    count = await fetchval(database_url, "SELECT count(*) FROM developers")
    assert count == ROWS
    assert await fetchval(database_url, "SELECT count(DISTINCT lower(email)) FROM developers") == ROWS
    attempts = await fetchval(database_url, f"SELECT attempts FROM import_jobs WHERE id = {job_id}")
    assert attempts == 2
    assert len(finished) == 1
    assert not [entry for entry in first.jobs() if entry[1] == "succeeded"]
    print(
        f"\ntranscript: job {job_id}: worker pid {first.pid} SIGKILLed at {midway['rows_done']} rows done; "
        f"finished by worker {finished[0][0]} (pid {second.pid}, attempt {attempts}); "
        f"developers table: {count} rows, {ROWS} distinct emails"
    )


async def test_two_workers_never_run_the_same_job_at_once(idle: httpx.AsyncClient, database_url: str) -> None:
    jobs_count, rows = 8, 3000
    async with worker_process(database_url) as one, worker_process(database_url) as two:
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
        assert started[0][2] <= succeeded[0][2]
    assert await fetchval(database_url, "SELECT count(*) FROM developers") == jobs_count * rows
    assert await fetchval(database_url, "SELECT count(DISTINCT lower(email)) FROM developers") == jobs_count * rows
    by_worker = defaultdict(list)
    for job_id in ids:
        by_worker[next(e[1] for e in runs[job_id] if e[0] == "started")].append(job_id)
    print(f"\njobs by worker: {dict(by_worker)}")


async def test_sigterm_gives_a_running_job_back_to_the_queue(idle: httpx.AsyncClient, database_url: str) -> None:
    blocker = await hold_row_5000(database_url)
    try:
        async with worker_process(database_url, WORKER_SHUTDOWN_SECONDS="1") as first:
            assert await health(first, "/health") == 200
            assert await health(first, "/ready") == 200
            job_id = await submitted(idle, "ndjson", people(ROWS))
            await until_job(idle, job_id, lambda j: j["status"] == "running" and j["rows_done"] > 0, "running")
        assert first.process.returncode == 0
        assert [entry[1] for entry in first.jobs()] == ["started", "requeued"]
        back = await until_job(idle, job_id, lambda j: j["status"] == "queued", "queued again")
        assert back["rows_done"] == 0
        assert await fetchval(database_url, f"SELECT attempts FROM import_jobs WHERE id = {job_id}") == 0
        await blocker.rollback()
    finally:
        await blocker.close()
    assert await fetchval(database_url, "SELECT count(*) FROM developers") == 0
    async with worker_process(database_url):
        done = await until_job(idle, job_id)
    assert done["status"] == "succeeded", done
    assert await fetchval(database_url, "SELECT count(*) FROM developers") == ROWS
