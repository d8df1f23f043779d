"""Periodic work, on pgqueuer's scheduler in the worker processes: each run is taken by one worker of the cluster
(pgqueuer's schedules table), so nothing here needs a lock of its own beyond what it already takes.

- finished import jobs older than IMPORTS_RETENTION_HOURS are deleted, their uploads with them;
- change events older than EVENTS_RETENTION_HOURS are deleted (service.developers.events.retention).
"""

from __future__ import annotations

import logging

from pgqueuer.domain.models import Schedule
from pgqueuer.sm import SchedulerManager
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db.autocommit import autocommit
from service.developers.events import retention
from service.imports import jobs
from service.settings import Settings

logger = logging.getLogger("service.imports")

EVERY = "*/10 * * * *"  # cron: every ten minutes
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
