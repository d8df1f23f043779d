"""Periodic work, on pgqueuer's scheduler in the worker processes: each run is taken by one worker of the cluster
(pgqueuer's schedules table), so nothing here needs a lock of its own beyond what it already takes.

- finished import jobs older than IMPORTS_RETENTION_HOURS are deleted, their uploads with them;
- change events older than EVENTS_RETENTION_HOURS are deleted (service.developers.events.retention);
- every minute, import jobs queued or running that have no queue entry are queued again.

That last one is a net under the worker. The worker never lets pgqueuer drop the entry of a job it has not ended
(service.imports.runner), and pgqueuer re-picks the entry of a worker that stopped heartbeating; what is left is
what neither foresaw: a retry pgqueuer could not write (it then deletes the entry), a handler that failed some
other way, an entry deleted by hand. Without an entry such a job would stay `running` for ever, its upload kept
and a cancel never ending. One query finds exactly those: the API commits a job with its entry, and a worker
deletes an entry only once its job's end has committed, so no snapshot shows a live job between the two. The job
queued again runs as any other: a new attempt (IMPORT_MAX_ATTEMPTS still bounds it), `cancelled` if a cancel was
asked for, skipped if it ended meanwhile, and held off by its advisory lock should its first run still go on.
"""

from __future__ import annotations

import logging

from pgqueuer.domain.models import Schedule
from pgqueuer.sm import SchedulerManager
from sqlalchemy.ext.asyncio import AsyncEngine

from service.core.settings import Settings
from service.db.autocommit import autocommit
from service.developers.events import retention
from service.imports import jobs, queue

logger = logging.getLogger("service.imports")

EVERY = "*/10 * * * *"  # cron: every ten minutes
SWEEP = "* * * * *"  # cron: every minute
BATCH = 1000  # jobs deleted per statement


async def delete_finished_jobs(engine: AsyncEngine, hours: int) -> int:
    deleted = 0
    async with autocommit(engine) as connection:
        while (count := await jobs.delete_finished(connection, hours, BATCH)) > 0:
            deleted += count
            if count < BATCH:
                break
    if deleted:
        logger.info("imports: deleted %d jobs finished more than %d hours ago", deleted, hours)
    return deleted


async def requeue_orphaned_jobs(engine: AsyncEngine) -> list[int]:
    """Queue again the jobs, queued or running, that have no queue entry; their ids."""
    async with autocommit(engine) as connection:
        orphans = await jobs.orphaned(connection)
        if orphans:
            async with connection.driver() as driver:
                await queue.enqueue(driver, *orphans)
    if orphans:
        logger.warning("imports: jobs %s had no queue entry; queued again", orphans)
    return orphans


async def delete_expired_events(engine: AsyncEngine, hours: int) -> int:
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        deleted = await retention.delete_expired(raw.driver_connection, hours)
    if deleted:
        logger.info("change feed: deleted %d events older than %d hours", deleted, hours)
    return deleted


def register(scheduler: SchedulerManager, engine: AsyncEngine, settings: Settings) -> None:
    @scheduler.schedule("delete_finished_imports", EVERY)
    async def finished_imports(_: Schedule) -> None:
        await delete_finished_jobs(engine, settings.imports_retention_hours)

    @scheduler.schedule("delete_expired_events", EVERY)
    async def expired_events(_: Schedule) -> None:
        await delete_expired_events(engine, settings.events_retention_hours)

    @scheduler.schedule("requeue_orphaned_imports", SWEEP)
    async def orphaned_imports(_: Schedule) -> None:
        await requeue_orphaned_jobs(engine)
