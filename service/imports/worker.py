"""The import worker: takes queued imports from pgqueuer and runs them through the bulk service.

Connections. The queue has one dedicated asyncpg connection (pgqueuer's dequeue, LISTEN, heartbeats, and the
scheduler's polls). Imports run on the worker's own small SQLAlchemy pool (WORKER_POOL_SIZE), never on the API's
request pool: an import holds two of its connections, its transaction and an autocommit one for status and
progress, which must be visible while the transaction is still open.

pgqueuer's asyncpg driver does not reconnect: when the queue connection is lost (terminated, restart, failover)
the managers stop and the worker connects again with backoff (0.1 s doubling to 5 s). An import still running
then finishes on its own connections; its queue entry, no longer heartbeating, is picked again later and skipped
as finished.

One job, exactly once:
- a worker that dies (SIGKILL, a lost node) stops heartbeating; after WORKER_HEARTBEAT_SECONDS another worker's
  dequeue picks the job again (pgqueuer), and its transaction never committed, so nothing of it is in the table;
- the import transaction first takes `pg_try_advisory_xact_lock(job id)`: a second worker that picks a job
  whose first worker is alive but late on heartbeats finds it held, and asks pgqueuer to retry later;
- the job's status is checked under that lock: a finished job is skipped; `succeeded` is written inside the
  import transaction, so the rows and the status commit together;
- each start counts an attempt (in `import_jobs.attempts`); a job found with IMPORT_MAX_ATTEMPTS of them is
  failed ("gave up after N attempts"), so a body that kills its workers cannot loop for ever.

Outcomes: a bad body (InvalidRows, EmailsTaken, TooManyRows: any DomainError) fails the job with the problem the
bulk route would answer, and writes nothing; a cancel rolls back and ends `cancelled`; an unexpected error rolls
back and pgqueuer retries the job after a backoff, until the attempts run out.

SIGTERM (`stop()`): no new job is taken; a running import has WORKER_SHUTDOWN_SECONDS to end; past it, it is
rolled back, its attempt is given back, and it is queued again for another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Literal

import asyncpg
import msgspec
from pgqueuer.domain.errors import RetryRequested
from pgqueuer.domain.models import Job
from pgqueuer.domain.types import Channel, JobId
from pgqueuer.qm import QueueManager
from pgqueuer.sm import SchedulerManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service.db import isolation
from service.db.autocommit import autocommit
from service.db.config import sqlalchemy_config
from service.db.models import FINISHED
from service.developers.bulk.parsers import parse
from service.developers.bulk.rows import Row
from service.developers.bulk.service import DevelopersBulkService
from service.errors import DomainError
from service.imports import jobs, queue, scheduler, uploads
from service.problems import problem_body
from service.settings import Settings
from service.system.instruments import WorkerMetrics

logger = logging.getLogger("service.imports")

State = Literal["starting", "ready", "reconnecting", "stopping", "stopped"]
RECONNECT_MIN, RECONNECT_MAX = 0.1, 5.0  # queue reconnect backoff, seconds
RETRY_MAX_SECONDS = 60.0  # backoff of a job retried after an unexpected error: 1 s, 2 s, 4 s ... up to this
QUEUE_APPLICATION = "devdir worker queue"
_LOCK = text("SELECT pg_try_advisory_xact_lock(:job_id)")


class ImportCancelled(Exception):
    """A cancel was requested while the import ran: its transaction rolls back."""


class _Failed(Exception):
    """The job has been marked failed (its outcome, for the metrics)."""


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


class Worker:
    def __init__(self, settings: Settings, metrics: WorkerMetrics | None = None) -> None:
        self.settings = settings
        # Its jobs' durations, the rows it imported, its readiness: `GET /metrics` on the probe port.
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        pool = msgspec.structs.replace(settings, db_pool_size=settings.worker_pool_size, db_max_overflow=0)
        self.db = sqlalchemy_config(pool, application_name="devdir worker")
        self.engine = self.db.get_engine()
        self.dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.name = f"{socket.gethostname()}/{os.getpid()}"
        self.heartbeat = timedelta(seconds=settings.worker_heartbeat_seconds)
        self.state: State = "starting"
        self.connections = 0  # queue connections opened so far
        self.queue_pid: int | None = None  # the queue connection's backend
        self._stopping = asyncio.Event()
        self._abort = asyncio.Event()  # set WORKER_SHUTDOWN_SECONDS after stop(): running imports give up
        self._task: asyncio.Task[None] | None = None
        self.metrics.watch(self)

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def stop(self) -> None:
        """Stop taking jobs, and end (see the module's docstring); safe to call from a signal handler."""
        if not self._stopping.is_set():
            logger.info("import worker %s: stopping", self.name)
            self.state = "stopping"
            self._stopping.set()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        """For an app's `lifespan`: a worker inside the API process (WORKER_IN_PROCESS)."""
        self._task = asyncio.create_task(self.run(), name="import-worker")
        try:
            yield
        finally:
            self.stop()
            await self._task

    async def run(self) -> None:
        """Take and run jobs until `stop()`, reconnecting the queue whenever its connection is lost."""
        backoff = RECONNECT_MIN
        try:
            while not self._stopping.is_set():
                connected = self.connections
                try:
                    await self._session()
                except Exception as exc:  # noqa: BLE001 (whatever ended the session, connect again)
                    if not self._stopping.is_set():
                        logger.warning(
                            "import worker %s: queue session ended (%s: %s)", self.name, type(exc).__name__, exc
                        )
                if self._stopping.is_set():
                    break
                self.state = "reconnecting"
                if self.connections > connected:
                    backoff = RECONNECT_MIN
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):
                        await self._stopping.wait()
                backoff = min(backoff * 2, RECONNECT_MAX)
        finally:
            self.state = "stopped"
            await self.engine.dispose()

    async def _session(self) -> None:
        """One queue connection's life: the queue and the scheduler on it, until it is lost or the worker stops."""
        connection = await asyncpg.connect(
            self.dsn,
            timeout=self.settings.db_connect_timeout,
            server_settings={"application_name": QUEUE_APPLICATION},
        )
        self.connections += 1
        self.queue_pid = connection.get_server_pid()
        queries = queue.queries(connection)
        manager = _QueueManager(
            queries, channel=Channel(queue.SETTINGS.channel), per_worker=self.settings.worker_concurrency
        )
        manager.entrypoint(queue.ENTRYPOINT)(self._handle)
        periodic = SchedulerManager(queries)
        scheduler.register(periodic, self.engine, self.settings)

        def end(*_: object) -> None:
            manager.shutdown.set()
            periodic.shutdown.set()

        connection.add_termination_listener(end)
        stopper = asyncio.create_task(self._stop_when_asked(end))
        runs = [
            asyncio.create_task(
                manager.run(
                    batch_size=1,
                    heartbeat_timeout=self.heartbeat,
                    shutdown_on_listener_failure=True,  # a listener that stopped answering: reconnect
                )
            ),
            asyncio.create_task(periodic.run()),
        ]
        try:
            self.state = "ready"
            logger.info("import worker %s: queue connected (backend %s)", self.name, self.queue_pid)
            await asyncio.wait(runs, return_when=asyncio.FIRST_COMPLETED)
            if not self._stopping.is_set():
                self.state = "reconnecting"
            end()
            await asyncio.wait(runs)  # a running import finishes first (or gives up, past the shutdown delay)
            for run in runs:
                if (error := run.exception()) is not None:
                    raise error
            if not self._stopping.is_set():
                raise ConnectionError("the queue connection was closed")
        finally:
            stopper.cancel()
            for run in runs:
                run.cancel()
            connection.terminate()

    async def _stop_when_asked(self, end: Any) -> None:
        await self._stopping.wait()
        end()
        await asyncio.sleep(self.settings.worker_shutdown_seconds)
        self._abort.set()

    # One job

    async def _handle(self, job: Job) -> None:
        """pgqueuer's entrypoint: the import, unless the worker is told to give up first (shutdown)."""
        job_id = int((job.payload or b"0").decode())
        work = asyncio.create_task(self._import(job_id, job.id))
        abort = asyncio.create_task(self._abort.wait())
        try:
            await asyncio.wait({work, abort}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            abort.cancel()
            if not work.done():
                work.cancel()
                await asyncio.wait({work})
        if not work.cancelled():
            return work.result()
        async with autocommit(self.engine) as status:
            await jobs.requeue(status, job_id, refund=True)
        logger.info("import job %d requeued by worker %s (shutting down)", job_id, self.name)
        raise RetryRequested(reason="the worker shut down before the import ended")

    async def _import(self, job_id: int, entry: JobId) -> None:
        async with autocommit(self.engine) as status, self.db.get_session() as session:
            await isolation.begin(session, "imports.run")
            if not (await session.execute(_LOCK, {"job_id": job_id})).scalar_one():
                logger.info("import job %d is running in another worker; %s retries later", job_id, self.name)
                raise RetryRequested(delay=self.heartbeat, reason="running in another worker")
            current = await jobs.state(status, job_id)
            if current is None or current.status in FINISHED:
                logger.info(
                    "import job %d skipped by worker %s (already %s)", job_id, self.name, current and current.status
                )
                return
            if current.attempts >= self.settings.import_max_attempts:
                await jobs.finish(status, job_id, "failed", _gave_up(current.attempts))
                logger.warning("import job %d failed: gave up after %d attempts", job_id, current.attempts)
                return
            started = await jobs.start(status, job_id)
            if started is None:  # cancelled meanwhile
                await jobs.finish(status, job_id, "cancelled")
                logger.info("import job %d cancelled by worker %s", job_id, self.name)
                return
            logger.info("import job %d started by worker %s (attempt %d)", job_id, self.name, started.attempts)
            began, outcome = time.monotonic(), "retried"  # unless it ends otherwise: an error, a shutdown
            try:
                await self._attempt(session, status, job_id, entry, started)
                outcome = "succeeded"
            except ImportCancelled:
                outcome = "cancelled"
            except _Failed:
                outcome = "failed"
            finally:
                self.metrics.jobs.finished(outcome, began)

    async def _attempt(
        self, session: AsyncSession, status: AsyncConnection, job_id: int, entry: JobId, started: jobs.Started
    ) -> None:
        """Run one started job to its end: returns when it succeeded; raises ImportCancelled or _Failed once the
        job is marked so, RetryRequested when it goes back to the queue."""
        try:
            await self._write(session, status, job_id, started)
        except ImportCancelled:
            await jobs.finish(status, job_id, "cancelled")
            await session.rollback()
            logger.info("import job %d cancelled by worker %s", job_id, self.name)
            raise
        except DomainError as exc:
            await jobs.finish(status, job_id, "failed", problem_body(exc))
            await session.rollback()
            logger.info("import job %d failed by worker %s: %s", job_id, self.name, exc.detail)
            raise _Failed() from exc
        except Exception as exc:
            with contextlib.suppress(Exception):
                await session.rollback()
            if started.attempts >= self.settings.import_max_attempts:
                await jobs.finish(status, job_id, "failed", _gave_up(started.attempts, exc))
                logger.exception("import job %d failed: gave up after %d attempts", job_id, started.attempts)
                raise _Failed() from exc
            await jobs.requeue(status, job_id, refund=False)
            delay = min(2.0 ** (started.attempts - 1), RETRY_MAX_SECONDS)
            logger.warning(
                "import job %d (queue entry %s): attempt %d failed; retry in %.0f s",
                job_id,
                entry,
                started.attempts,
                delay,
                exc_info=exc,
            )
            raise RetryRequested(delay=timedelta(seconds=delay), reason=f"{type(exc).__name__}: {exc}") from exc
        else:
            logger.info("import job %d succeeded by worker %s", job_id, self.name)

    async def _write(self, session: AsyncSession, status: AsyncConnection, job_id: int, started: jobs.Started) -> None:
        """The import transaction: the rows, then the job's `succeeded` and the upload's deletion; COMMIT."""
        bulk = DevelopersBulkService(
            session,
            max_rows=self.settings.bulk_max_rows,
            statement_timeout_ms=self.settings.bulk_statement_timeout_ms,
            metrics=self.metrics.bulk,
        )
        rows = parse(started.media_type, uploads.read(status, job_id), self.settings.bulk_max_rows)
        result = await bulk.import_rows(_reporting(rows, status, job_id), started.on_conflict)
        if not await jobs.succeed(session, job_id, result):
            raise ImportCancelled()
        await uploads.delete(session, job_id)
        await session.commit()


async def _reporting(
    chunks: AsyncIterator[list[Row]], status: AsyncConnection, job_id: int
) -> AsyncIterator[list[Row]]:
    """`chunks`, recording the rows done after each (one round trip a chunk); ImportCancelled once asked to."""
    done = 0
    async for chunk in chunks:
        done += len(chunk)
        if await jobs.progress(status, job_id, done):
            raise ImportCancelled()
        yield chunk


def _gave_up(attempts: int, exc: BaseException | None = None) -> dict[str, Any]:
    reason = "" if exc is None else f" (the last: {type(exc).__name__})"
    detail = f"gave up after {attempts} attempts{reason}; nothing was written"
    return {"status": 500, "title": "Internal Server Error", "detail": detail}
