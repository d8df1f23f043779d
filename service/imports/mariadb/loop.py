"""The worker's queue on MariaDB: WORKER_CONCURRENCY slots, each taking the next due job from import_queue and
running it (service.imports.mariadb.runner), and every ten minutes the deletion of old finished jobs and old change
events (what pgqueuer's scheduler runs on PostgreSQL, service.imports.scheduler).

No NOTIFY: an idle slot polls every POLL (1 s): a new job, a retry whose delay ended, a dead worker's job all
wait at most that long. An idle poll costs one indexed `SELECT ... FOR UPDATE SKIP LOCKED` and a ROLLBACK per
slot a second on the worker's pool. One `session()` lasts until the worker stops, or until a take fails (the
server gone): then the slots finish what they run, and the Worker connects again with backoff, as on
PostgreSQL. No sweep of orphaned jobs is needed: an entry is deleted only in the transaction that ends its job.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import text

from service.db.autocommit import autocommit
from service.developers.events import mariadb_retention
from service.imports.mariadb import status
from service.imports.mariadb.runner import MariaDBJobRunner

if TYPE_CHECKING:
    from service.imports.worker import Worker

logger = logging.getLogger("service.imports")

POLL = timedelta(seconds=1)
RETENTION_EVERY = 600.0  # seconds between two deletions of old finished jobs
BATCH = 1000


class MariaDBLoop:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.runner = MariaDBJobRunner(worker.settings, worker.db, worker.metrics, worker.name, worker._abort)

    async def session(self) -> None:
        worker = self.worker
        async with worker.engine.connect() as connection:  # ready once the server answers
            worker.queue_pid = int((await connection.execute(text("SELECT CONNECTION_ID()"))).scalar_one())
        worker.connections += 1
        worker.state = "ready"
        logger.info("import worker %s: polling import_queue", worker.name)
        ending = asyncio.Event()
        tasks = [asyncio.create_task(self._slot(ending)) for _ in range(worker.settings.worker_concurrency)]
        tasks.append(asyncio.create_task(self._retention(ending)))
        aborter = asyncio.create_task(self._abort_when_stopped())
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            ending.set()
            if not worker._stopping.is_set():
                worker.state = "reconnecting"
            await asyncio.wait(tasks)  # a running import finishes first (or gives up, past the shutdown delay)
            for task in tasks:
                if (error := task.exception()) is not None:
                    raise error
        finally:
            aborter.cancel()
            for task in tasks:
                task.cancel()

    async def _abort_when_stopped(self) -> None:
        """WORKER_SHUTDOWN_SECONDS after stop(), running imports give up (service.imports.mariadb.runner)."""
        await self.worker._stopping.wait()
        await asyncio.sleep(self.worker.settings.worker_shutdown_seconds)
        self.worker._abort.set()

    async def _slot(self, ending: asyncio.Event) -> None:
        while not (self.worker._stopping.is_set() or ending.is_set()):
            try:
                ran = await self.runner.take_and_run()
            except Exception:
                ending.set()
                raise
            if not ran:
                await self._idle(ending, POLL.total_seconds())

    async def _idle(self, ending: asyncio.Event, seconds: float) -> None:
        stop = asyncio.create_task(self.worker._stopping.wait())
        end = asyncio.create_task(ending.wait())
        try:
            await asyncio.wait({stop, end}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            end.cancel()

    async def _retention(self, ending: asyncio.Event) -> None:
        """Every RETENTION_EVERY: finished jobs past IMPORTS_RETENTION_HOURS, change events past
        EVENTS_RETENTION_HOURS (one process at a time: service.developers.events.mariadb_retention)."""
        settings, engine = self.worker.settings, self.worker.engine
        while not (self.worker._stopping.is_set() or ending.is_set()):
            try:
                async with autocommit(engine) as connection:
                    while await status.delete_finished(connection, settings.imports_retention_hours, BATCH) == BATCH:
                        pass
                async with engine.connect() as connection:
                    driver = (await connection.get_raw_connection()).driver_connection
                    assert driver is not None
                    await mariadb_retention.delete_expired(driver, settings.events_retention_hours)
            except Exception as exc:  # noqa: BLE001 (the slots see a lost server; this tries again next time)
                logger.warning("imports: retention failed (%s: %s)", type(exc).__name__, exc)
            await self._idle(ending, RETENTION_EVERY)
