"""One import job, run exactly once, with its outcome recorded whichever connection is lost on the way.

Exactly once:
- the import transaction first takes `pg_try_advisory_xact_lock(job id)`: a second worker that picks a job
  whose first worker is alive but late on heartbeats finds it held, and asks pgqueuer to retry later;
- the job's status is checked under that lock: a finished job is skipped; `succeeded` is written inside the
  import transaction, so the rows and the status commit together;
- each start counts an attempt (in `import_jobs.attempts`); a job found with IMPORT_MAX_ATTEMPTS of them is
  failed ("gave up after N attempts"), so a body that kills its workers cannot loop for ever.

Outcomes: a bad body (InvalidRows, EmailsTaken, TooManyRows: any DomainError) fails the job with the problem the
bulk route would answer, and writes nothing; a cancel rolls back and ends `cancelled`; an unexpected error rolls
back and the job is queued again after a backoff (1 s, 2 s, 4 s ... RETRY_MAX_SECONDS), until its attempts run
out.

Lost connections. An import holds two connections: its transaction, and an autocommit one that reads the upload
and writes progress. Losing either (a terminated backend, a restart) is an unexpected error of the attempt. Its
outcome (failed, cancelled, queued again) is written once the import transaction has rolled back, on a fresh
connection, and tried again on another if it fails (RECORD_ATTEMPTS, 3 s in all): each is one idempotent
statement. Whatever still goes wrong becomes a retry of the queue entry, as `run` raises nothing else: pgqueuer
deletes the entry of a handler that raised anything else, and the job would stay `running` with nothing to run
it, its upload kept and a cancel never ending. A job left `running` by a lost write is simply started again by
that retry, which counts an attempt (a start takes a `running` job too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from pgqueuer.domain.errors import RetryRequested
from pgqueuer.domain.models import Job
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from service.core.errors import DomainError
from service.core.settings import Settings
from service.db import isolation
from service.db.autocommit import EachCommits, autocommit
from service.db.models import FINISHED
from service.developers.bulk.parsers import parse
from service.developers.bulk.rows import Row
from service.developers.bulk.servers import bulk_sql
from service.developers.bulk.service import DevelopersBulkService
from service.imports import jobs, uploads
from service.observability.instruments import WorkerMetrics

logger = logging.getLogger("service.imports")

RETRY_MAX_SECONDS = 60.0  # backoff of a job retried after an unexpected error: 1 s, 2 s, 4 s ... up to this
RECORD_ATTEMPTS = 5  # tries of an outcome's write, each on a fresh connection, 0.2 s, 0.4 s, 0.8 s, 1.6 s apart
RECORD_BACKOFF = 0.2
_LOCK = text("SELECT pg_try_advisory_xact_lock(:job_id)")

Write = Callable[[EachCommits], Awaitable[None]]


class ImportCancelled(Exception):
    """A cancel was requested while the import ran: its transaction rolls back."""


class _Failed(Exception):
    """The job has been marked failed (its outcome, for the metrics)."""


def job_id(entry: Job) -> int:
    """The import job a queue entry stands for: its payload is the job id, as ASCII digits."""
    return int((entry.payload or b"0").decode())


class JobRunner:
    """Runs a worker's jobs on the worker's own pool (`db`), and records how each ended."""

    def __init__(self, settings: Settings, db: SQLAlchemyAsyncConfig, metrics: WorkerMetrics, name: str) -> None:
        self.settings = settings
        self.db = db
        self.engine = db.get_engine()
        self.metrics = metrics
        self.name = name  # the worker's, for the log
        self.heartbeat = timedelta(seconds=settings.worker_heartbeat_seconds)
        self.sql = bulk_sql(settings.backend)  # the import's statements, for this server

    async def run(self, entry: Job) -> None:
        """Run the entry's job to its outcome; RetryRequested, and nothing else, when it is to run again."""
        try:
            await self._import(job_id(entry))
        except RetryRequested:
            raise
        except Exception as exc:
            delay = _backoff(entry.attempts)
            logger.warning(
                "import job %d (queue entry %s) lost by worker %s before its outcome was recorded; retry in %.0f s",
                job_id(entry),
                entry.id,
                self.name,
                delay,
                exc_info=exc,
            )
            raise RetryRequested(delay=timedelta(seconds=delay), reason=f"{type(exc).__name__}: {exc}") from exc

    async def give_back(self, entry: Job) -> None:
        """The worker is shutting down mid-import: the job is queued again, its attempt not counted (should this
        write fail, the job stays `running`, and is started again all the same)."""
        try:
            await self._record(lambda connection: jobs.requeue(connection, job_id(entry), refund=True))
        except Exception as exc:  # noqa: BLE001 (the entry's retry still runs the job again)
            logger.warning("import job %d: not marked queued (%s)", job_id(entry), type(exc).__name__)
        logger.info("import job %d requeued by worker %s (shutting down)", job_id(entry), self.name)

    async def _import(self, job: int) -> None:
        async with autocommit(self.engine) as status, self.db.get_session() as session:
            await isolation.begin(session, "imports.run")
            if not (await session.execute(_LOCK, {"job_id": job})).scalar_one():
                logger.info("import job %d is running in another worker; %s retries later", job, self.name)
                raise RetryRequested(delay=self.heartbeat, reason="running in another worker")
            started = await self._start(status, job)
            if started is None:
                return
            began, outcome = time.monotonic(), "retried"  # unless it ends otherwise: an error, a shutdown
            try:
                await self._attempt(session, status, job, started)
                outcome = "succeeded"
            except ImportCancelled:
                outcome = "cancelled"
            except _Failed:
                outcome = "failed"
            finally:
                self.metrics.jobs.finished(outcome, began)

    async def _start(self, status: EachCommits, job: int) -> jobs.Started | None:
        """Count an attempt and mark the job running; None when there is nothing to run: the job is finished, or
        out of attempts (failed now), or cancelled (now)."""
        current = await jobs.state(status, job)
        if current is None or current.status in FINISHED:
            logger.info("import job %d skipped by worker %s (already %s)", job, self.name, current and current.status)
            return None
        if (attempts := current.attempts) >= self.settings.import_max_attempts:
            await self._record(lambda connection: jobs.finish(connection, job, "failed", _gave_up(attempts)))
            logger.warning("import job %d failed: gave up after %d attempts", job, attempts)
            return None
        started = await jobs.start(status, job)
        if started is None:  # cancelled meanwhile
            await self._record(lambda connection: jobs.finish(connection, job, "cancelled"))
            logger.info("import job %d cancelled by worker %s", job, self.name)
            return None
        logger.info("import job %d started by worker %s (attempt %d)", job, self.name, started.attempts)
        return started

    async def _attempt(self, session: AsyncSession, status: EachCommits, job: int, started: jobs.Started) -> None:
        """Run one started job to its end: returns when it succeeded; raises ImportCancelled or _Failed once the
        job is marked so, RetryRequested when it is queued again."""
        try:
            await self._write(session, status, job, started)
        except ImportCancelled:
            await session.rollback()
            await self._record(lambda connection: jobs.finish(connection, job, "cancelled"))
            logger.info("import job %d cancelled by worker %s", job, self.name)
            raise
        except DomainError as exc:
            await session.rollback()
            problem = exc.problem()
            await self._record(lambda connection: jobs.finish(connection, job, "failed", problem))
            logger.info("import job %d failed by worker %s: %s", job, self.name, exc.detail)
            raise _Failed() from exc
        except Exception as exc:
            with contextlib.suppress(Exception):
                await session.rollback()
            raise await self._after_error(job, started.attempts, exc) from exc
        else:
            logger.info("import job %d succeeded by worker %s", job, self.name)

    async def _after_error(self, job: int, attempts: int, exc: Exception) -> Exception:
        """What an unexpected error of attempt `attempts` ends in, once recorded: _Failed when it was the last
        one, else RetryRequested (the job queued again)."""
        if attempts >= self.settings.import_max_attempts:
            problem = _gave_up(attempts, exc)
            await self._record(lambda connection: jobs.finish(connection, job, "failed", problem))
            logger.error("import job %d failed: gave up after %d attempts", job, attempts, exc_info=exc)
            return _Failed()
        await self._record(lambda connection: jobs.requeue(connection, job, refund=False))
        delay = _backoff(attempts - 1)
        logger.warning("import job %d: attempt %d failed; retry in %.0f s", job, attempts, delay, exc_info=exc)
        return RetryRequested(delay=timedelta(seconds=delay), reason=f"{type(exc).__name__}: {exc}")

    async def _record(self, write: Write) -> None:
        """`write` (one idempotent statement) on a fresh autocommit connection; on another if that fails."""
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                async with autocommit(self.engine) as connection:
                    await write(connection)
            except Exception as exc:
                if attempt == RECORD_ATTEMPTS:
                    raise
                logger.warning("import status write failed (%s: %s); trying again", type(exc).__name__, exc)
                await asyncio.sleep(RECORD_BACKOFF * 2 ** (attempt - 1))
            else:
                return

    async def _write(self, session: AsyncSession, status: EachCommits, job: int, started: jobs.Started) -> None:
        """The import transaction: the rows, then the job's `succeeded` and the upload's deletion; COMMIT."""
        bulk = DevelopersBulkService(
            session,
            self.sql,
            max_rows=self.settings.bulk_max_rows,
            statement_timeout_ms=self.settings.bulk_statement_timeout_ms,
            metrics=self.metrics.bulk,
        )
        rows = parse(started.media_type, uploads.read(status, job), self.settings.bulk_max_rows)
        result = await bulk.import_rows(_reporting(rows, status, job), started.on_conflict)
        if not await jobs.succeed(session, job, result):
            raise ImportCancelled()
        await uploads.delete(session, job)
        await session.commit()


async def _reporting(chunks: AsyncIterator[list[Row]], status: EachCommits, job: int) -> AsyncIterator[list[Row]]:
    """`chunks`, recording the rows done after each (one round trip a chunk); ImportCancelled once asked to."""
    done = 0
    async for chunk in chunks:
        done += len(chunk)
        if await jobs.progress(status, job, done):
            raise ImportCancelled()
        yield chunk


def _backoff(retries: int) -> float:
    return min(2.0**retries, RETRY_MAX_SECONDS)


def _gave_up(attempts: int, exc: BaseException | None = None) -> dict[str, Any]:
    reason = "" if exc is None else f" (the last: {type(exc).__name__})"
    detail = f"gave up after {attempts} attempts{reason}; nothing was written"
    return {"status": 500, "title": "Internal Server Error", "detail": detail}
