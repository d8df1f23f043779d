"""The worker's queue on PostgreSQL: pgqueuer takes, heartbeats, retries and deletes the entries; the runner
(service.imports.runner) runs each job. One `session()` is one queue connection's life (service.imports.worker
says what the Worker around it does when it ends).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
from pgqueuer.domain.errors import RetryRequested
from pgqueuer.domain.models import Job
from pgqueuer.domain.types import Channel
from pgqueuer.qm import QueueManager
from pgqueuer.sm import SchedulerManager

from service.db.config import plain_url
from service.db.queue import ENTRYPOINT, SETTINGS
from service.imports import queue, scheduler
from service.imports.runner import JobRunner

if TYPE_CHECKING:
    from service.imports.worker import Worker

logger = logging.getLogger("service.imports")

POLL = timedelta(seconds=1)  # the longest a worker waits between two dequeues (service.imports.worker)
QUEUE_APPLICATION = "devdir worker queue"


@dataclasses.dataclass
class _QueueManager(QueueManager):
    """pgqueuer's QueueManager holding at most `per_worker` picked jobs.

    Its dequeue query caps the jobs one worker has picked at any number, but `run()` refuses a cap under twice
    the batch size, so a worker of one job at a time (batch 1, cap 1) passes its cap here instead.
    """

    per_worker: int = 1

    async def fetch_jobs(  # type: ignore[override]
        self, batch_size: int, global_concurrency_limit: int | None, heartbeat_timeout: timedelta
    ) -> AsyncIterator[Job]:
        async for job in super().fetch_jobs(batch_size, self.per_worker, heartbeat_timeout):
            yield job


class PgQueuerLoop:
    """The Worker's queue on PostgreSQL: pgqueuer's managers on one dedicated asyncpg connection."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.settings = worker.settings
        self.dsn = plain_url(worker.settings.direct_url)  # the queue's LISTEN needs a session: never a pooler
        self.heartbeat = timedelta(seconds=worker.settings.worker_heartbeat_seconds)
        self.runner = JobRunner(worker.settings, worker.db, worker.metrics, worker.name)

    async def session(self) -> None:
        """One queue connection's life: the queue and the scheduler on it, until it is lost or the worker stops."""
        connection = await asyncpg.connect(
            self.dsn,
            timeout=self.settings.db_connect_timeout,
            server_settings={"application_name": QUEUE_APPLICATION},
        )
        self.worker.connections += 1
        self.worker.queue_pid = connection.get_server_pid()
        queries = queue.queries(connection)
        manager = _QueueManager(queries, channel=Channel(SETTINGS.channel), per_worker=self.settings.worker_concurrency)
        manager.entrypoint(ENTRYPOINT)(self._handle)
        periodic = SchedulerManager(queries)
        scheduler.register(periodic, self.worker.engine, self.settings)

        def end(*_: object) -> None:
            manager.shutdown.set()
            periodic.shutdown.set()

        connection.add_termination_listener(end)
        stopper = asyncio.create_task(self._stop_when_asked(end))
        runs = [
            asyncio.create_task(
                manager.run(
                    batch_size=1,
                    dequeue_timeout=POLL,
                    heartbeat_timeout=self.heartbeat,
                    shutdown_on_listener_failure=True,  # a listener that stopped answering: reconnect
                )
            ),
            asyncio.create_task(periodic.run()),
        ]
        try:
            self.worker.state = "ready"
            logger.info("import worker %s: queue connected (backend %s)", self.worker.name, self.worker.queue_pid)
            await asyncio.wait(runs, return_when=asyncio.FIRST_COMPLETED)
            if not self.worker._stopping.is_set():
                self.worker.state = "reconnecting"
            end()
            await asyncio.wait(runs)  # a running import finishes first (or gives up, past the shutdown delay)
            for run in runs:
                if (error := run.exception()) is not None:
                    raise error
            if not self.worker._stopping.is_set():
                raise ConnectionError("the queue connection was closed")
        finally:
            stopper.cancel()
            for run in runs:
                run.cancel()
            connection.terminate()

    async def _stop_when_asked(self, end: Any) -> None:
        await self.worker._stopping.wait()
        end()
        await asyncio.sleep(self.settings.worker_shutdown_seconds)
        self.worker._abort.set()

    async def _handle(self, job: Job) -> None:
        """pgqueuer's entrypoint: the import, unless the worker is told to give up first (shutdown)."""
        work = asyncio.create_task(self.runner.run(job))
        abort = asyncio.create_task(self.worker._abort.wait())
        try:
            await asyncio.wait({work, abort}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            abort.cancel()
            if not work.done():
                work.cancel()
                await asyncio.wait({work})
        if not work.cancelled():
            return work.result()
        await self.runner.give_back(job)
        raise RetryRequested(reason="the worker shut down before the import ended")
