"""The worker's rules, in process: a job out of attempts is failed, not run; the periodic tasks delete finished
jobs and expired change events."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from service.core.settings import Settings
from service.db.config import async_url
from service.imports import scheduler
from service.imports.worker import Worker
from tests.database import fetch, fetchval, run_sql
from tests.developers.api import people
from tests.imports.api import quick, submitted, until_job
from tests.polling import until
from tests.postgresql_only import PGQUEUER_SCHEDULER


async def test_a_job_out_of_attempts_is_failed_without_running(
    idle: httpx.AsyncClient, settings: Settings, database_url: str
) -> None:
    job_id = await submitted(idle, "json", people(5))
    await run_sql(database_url, f"UPDATE import_jobs SET attempts = 3 WHERE id = {job_id}")
    worker = Worker(quick(settings, import_max_attempts=3))
    async with worker.lifespan(None):
        await until(lambda: worker.ready, "the worker to connect")
        done = await until_job(idle, job_id)
    assert done["status"] == "failed"
    assert done["error"]["detail"].startswith("gave up after 3 attempts")
    assert await fetchval(database_url, "SELECT count(*) FROM developers") == 0
    assert await fetchval(database_url, "SELECT count(*) FROM import_uploads") == 0


@PGQUEUER_SCHEDULER
async def test_periodic_tasks_delete_old_finished_jobs_and_expired_events(
    idle: httpx.AsyncClient, database_url: str
) -> None:
    old, recent, queued = [await submitted(idle, "json", people(1, i)) for i in range(3)]
    await run_sql(
        database_url,
        f"UPDATE import_jobs SET status = 'cancelled', finished_at = now() - INTERVAL '200' HOUR WHERE id = {old}",
        f"UPDATE import_jobs SET status = 'cancelled', finished_at = now() - INTERVAL '1' HOUR WHERE id = {recent}",
        "UPDATE developer_events SET at = now() - INTERVAL '30' HOUR",
    )
    engine = create_async_engine(async_url(database_url))
    try:
        assert await scheduler.delete_finished_jobs(engine, 168) == 1
        assert await scheduler.delete_expired_events(engine, 24) > 0
    finally:
        await engine.dispose()
    ids = [row["id"] for row in await fetch(database_url, "SELECT id FROM import_jobs ORDER BY id")]
    assert ids == [recent, queued]
    assert await fetchval(database_url, f"SELECT count(*) FROM import_uploads WHERE job_id = {old}") == 0
    assert (
        await fetchval(database_url, "SELECT count(*) FROM developer_events WHERE at < now() - INTERVAL '24' HOUR") == 0
    )
