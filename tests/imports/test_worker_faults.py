"""A worker's connections killed mid-import, each kind in turn: the job still ends (succeeded, after a retry
when its attempt was lost), with all its rows or none, its upload deleted and its queue entry gone, and every
retry comes about when it said it would. A job whose queue entry is gone anyway is queued again by the sweep."""

from __future__ import annotations

import httpx
import pytest
from pgqueuer.sm import SchedulerManager
from sqlalchemy.ext.asyncio import create_async_engine

from service.core.settings import Settings
from service.db.config import async_url
from service.imports import queue, scheduler
from service.imports.worker import Worker
from tests.database import connect, fetchval, run_sql
from tests.developers.api import people
from tests.developers.feed_client import until
from tests.imports.api import quick, submitted, until_job
from tests.imports.faults import (
    WORKER_BACKENDS,
    hold_row_5000,
    queue_entry,
    queue_log,
    retries,
    terminate,
    until_queue_empty,
)
from tests.postgresql_only import PGQUEUER

pytestmark = PGQUEUER

ROWS = 50_000
# How much later than its delay a retry may come: the worker polls the queue every second; the rest is room
# for a loaded machine.
SLACK = 5.0


@pytest.mark.parametrize("backends", list(WORKER_BACKENDS))
async def test_a_worker_connection_killed_mid_import_still_ends_the_job(
    api: httpx.AsyncClient, database_url: str, backends: str
) -> None:
    blocker = await hold_row_5000(database_url)
    try:
        job_id = await submitted(api, "ndjson", people(ROWS))
        midway = await until_job(api, job_id, lambda j: j["status"] == "running" and j["rows_done"] > 0, "running")
        entry = await queue_entry(database_url, job_id)
        killed = await terminate(database_url, backends)
        assert killed >= 1
        await blocker.rollback()
    finally:
        await blocker.close()
    done = await until_job(api, job_id)
    await until_queue_empty(database_url)
    log = await queue_log(database_url, entry)
    assert done["status"] == "succeeded", (done, log)
    assert await fetchval(database_url, "SELECT count(*) FROM developers") == ROWS
    assert await fetchval(database_url, "SELECT count(DISTINCT lower(email)) FROM developers") == ROWS
    assert await fetchval(database_url, "SELECT count(*) FROM import_uploads") == 0
    for delay, waited in retries(log):
        assert waited < delay.total_seconds() + SLACK, log
    attempts = await fetchval(database_url, f"SELECT attempts FROM import_jobs WHERE id = {job_id}")
    waits = [(delay.total_seconds(), round(waited, 2)) for delay, waited in retries(log)]
    print(
        f"\n{backends}: {killed} backend(s) killed at {midway['rows_done']} rows done; {done['status']} after "
        f"{attempts} attempt(s); retries (asked, waited s): {waits}"
    )


async def test_the_sweep_queues_again_the_jobs_that_lost_their_queue_entry(
    idle: httpx.AsyncClient, settings: Settings, database_url: str
) -> None:
    queued, running, cancelled, healthy, finished = [await submitted(idle, "json", people(3, i * 10)) for i in range(5)]
    assert (await idle.delete(f"/api/imports/{finished}")).json()["status"] == "cancelled"
    await run_sql(
        database_url,
        "UPDATE import_jobs SET status = 'running', attempts = 1, started_at = now() "
        f"WHERE id IN ({running}, {cancelled})",
        f"DELETE FROM pgqueuer WHERE payload <> convert_to('{healthy}', 'UTF8')",
    )
    asked = (await idle.delete(f"/api/imports/{cancelled}")).json()
    assert (asked["status"], asked["cancel_requested"]) == ("running", True)
    engine = create_async_engine(async_url(database_url))
    try:
        assert await scheduler.requeue_orphaned_jobs(engine) == [queued, running, cancelled]
        assert await scheduler.requeue_orphaned_jobs(engine) == []
    finally:
        await engine.dispose()
    worker = Worker(quick(settings))
    async with worker.lifespan(None):
        await until(lambda: worker.ready, "the worker to connect")
        ended = {job_id: (await until_job(idle, job_id))["status"] for job_id in (queued, running, cancelled, healthy)}
        await until_queue_empty(database_url)
    assert ended == {queued: "succeeded", running: "succeeded", cancelled: "cancelled", healthy: "succeeded"}
    assert await fetchval(database_url, "SELECT count(*) FROM developers") == 9
    assert await fetchval(database_url, "SELECT count(*) FROM import_uploads") == 0


async def test_the_sweep_runs_on_the_workers_scheduler(settings: Settings, database_url: str) -> None:
    connection = await connect(database_url)
    engine = create_async_engine(async_url(database_url))
    try:
        periodic = SchedulerManager(queue.queries(connection))
        scheduler.register(periodic, engine, settings)
        tasks = {(key.entrypoint, key.expression) for key in periodic.registry}
    finally:
        await engine.dispose()
        await connection.close()
    assert ("requeue_orphaned_imports", scheduler.SWEEP) in tasks
