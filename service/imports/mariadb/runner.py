"""One import job on MariaDB, taken from import_queue and run to its outcome in the transaction that holds it.

The transaction (READ COMMITTED) takes the entry (`FOR UPDATE SKIP LOCKED`), sets a savepoint, imports the rows,
and writes the outcome: `succeeded` with the rows, or, rolled back to the savepoint, `failed` with its problem,
`cancelled`, or queued again after a backoff (`run_after`); the entry is deleted with any end, and COMMIT makes the
whole of it durable at once. Status and progress go meanwhile on an autocommit connection, as on PostgreSQL.

Exactly once: the entry's row lock is held from the take to the COMMIT, so no other worker can take the job while
it runs; a worker that dies (SIGKILL, a killed connection) loses its transaction and its lock together, and the
next taker finds the job `running` and starts it again, one more attempt (IMPORT_MAX_ATTEMPTS bounds them).
When the import's own connection is lost, the outcome is written on a fresh one, only if no one else holds the
entry by then (`take_one`): whoever holds it owns the job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction

from service.core.errors import DomainError
from service.core.settings import Settings
from service.db import isolation
from service.db.autocommit import EachCommits, autocommit
from service.db.models import FINISHED
from service.developers.bulk.parsers import parse
from service.developers.bulk.rows import Row
from service.developers.bulk.servers import bulk_sql
from service.developers.bulk.service import DevelopersBulkService
from service.imports import uploads
from service.imports.jobs import Started
from service.imports.mariadb import queue, status
from service.imports.runner import RECORD_ATTEMPTS, RECORD_BACKOFF, ImportCancelled, backoff, gave_up
from service.observability.instruments import WorkerMetrics

logger = logging.getLogger("service.imports")

Outcome = Callable[[status.Transaction], Awaitable[None]]


class MariaDBJobRunner:
    """Takes and runs a worker's jobs on the worker's own pool (`db`); `abort` is set when running imports must
    give up (past WORKER_SHUTDOWN_SECONDS after SIGTERM)."""

    def __init__(
        self, settings: Settings, db: SQLAlchemyAsyncConfig, metrics: WorkerMetrics, name: str, abort: asyncio.Event
    ) -> None:
        self.settings = settings
        self.db = db
        self.engine = db.get_engine()
        self.metrics = metrics
        self.name = name
        self.abort = abort

    async def take_and_run(self) -> bool:
        """Take the next due job and run it to its outcome; False when none was due.

        An idle take is two round trips: the SELECT ... FOR UPDATE SKIP LOCKED and the ROLLBACK."""
        async with self.db.get_session() as session:
            await isolation.begin(session, "imports.run")
            job = await queue.take(session)
            if job is None:
                await session.rollback()
                return False
            async with autocommit(self.engine) as progress:
                started = await self._start(session, progress, job)
                if started is not None:
                    await self._run(session, progress, job, started)
            return True

    async def _start(self, session: AsyncSession, progress: EachCommits, job: int) -> Started | None:
        """Count an attempt and mark the job running; None when it has ended here instead (already finished,
        out of attempts, cancelled), its entry deleted and committed."""
        current = await status.state(progress, job)
        if current is None or current.status in FINISHED:
            logger.info("import job %d skipped by worker %s (already %s)", job, self.name, current and current.status)
            await self._commit(session, job, None)
            return None
        if (attempts := current.attempts) >= self.settings.import_max_attempts:
            await self._commit(session, job, lambda t: status.finish(t, job, "failed", gave_up(attempts)))
            logger.warning("import job %d failed: gave up after %d attempts", job, attempts)
            return None
        started = await status.start(progress, job)
        if started is None:
            await self._commit(session, job, lambda t: status.finish(t, job, "cancelled"))
            logger.info("import job %d cancelled by worker %s", job, self.name)
            return None
        logger.info("import job %d started by worker %s (attempt %d)", job, self.name, started.attempts)
        return started

    async def _run(self, session: AsyncSession, progress: EachCommits, job: int, started: Started) -> None:
        """The attempt, unless the worker is told to give up first (shutdown): then the job is queued again, its
        attempt given back, while this transaction still holds it, and the transaction is dropped."""
        began, outcome = time.monotonic(), "retried"
        work = asyncio.create_task(self._attempt(session, progress, job, started))
        abort = asyncio.create_task(self.abort.wait())
        try:
            await asyncio.wait({work, abort}, return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                outcome = work.result()
                return
            await self._record(job, lambda t: status.requeue(t, job, refund=True), held=True)
            logger.info("import job %d requeued by worker %s (shutting down)", job, self.name)
            work.cancel()
            await asyncio.wait({work})
            await progress.invalidate()
            await session.invalidate()  # the server rolls back and releases the entry for another worker
        finally:
            abort.cancel()
            self.metrics.jobs.finished(outcome, began)

    async def _attempt(self, session: AsyncSession, progress: EachCommits, job: int, started: Started) -> str:
        """Run one started job to its outcome, recorded; the outcome's name (for the metrics)."""
        savepoint = await session.begin_nested()
        try:
            await self._write(session, progress, job, started)
        except ImportCancelled:
            await self._end(session, savepoint, job, lambda t: status.finish(t, job, "cancelled"))
            logger.info("import job %d cancelled by worker %s", job, self.name)
            return "cancelled"
        except DomainError as exc:
            problem = exc.problem()
            await self._end(session, savepoint, job, lambda t: status.finish(t, job, "failed", problem))
            logger.info("import job %d failed by worker %s: %s", job, self.name, exc.detail)
            return "failed"
        except Exception as exc:  # noqa: BLE001 (any other error is an attempt that may be retried)
            return await self._after_error(session, savepoint, job, started.attempts, exc)
        logger.info("import job %d succeeded by worker %s", job, self.name)
        return "succeeded"

    async def _after_error(
        self, session: AsyncSession, savepoint: AsyncSessionTransaction, job: int, attempts: int, exc: Exception
    ) -> str:
        if attempts >= self.settings.import_max_attempts:
            problem = gave_up(attempts, exc)
            await self._end(session, savepoint, job, lambda t: status.finish(t, job, "failed", problem))
            logger.error("import job %d failed: gave up after %d attempts", job, attempts, exc_info=exc)
            return "failed"
        delay = backoff(attempts - 1)

        async def again(transaction: status.Transaction) -> None:
            await status.requeue(transaction, job, refund=False)
            await queue.retry(transaction, job, delay)

        await self._end(session, savepoint, job, again, done=False)
        logger.warning("import job %d: attempt %d failed; retry in %.0f s", job, attempts, delay, exc_info=exc)
        return "retried"

    async def _write(self, session: AsyncSession, progress: EachCommits, job: int, started: Started) -> None:
        """The rows, then the job's `succeeded`, the upload's and the entry's deletion; COMMIT."""
        rows = parse(started.media_type, uploads.read(progress, job), self.settings.bulk_max_rows)
        reported = _reporting(rows, progress, job, started.attempts)
        bulk = DevelopersBulkService(
            session,
            bulk_sql("mariadb"),
            max_rows=self.settings.bulk_max_rows,
            statement_timeout_ms=self.settings.bulk_statement_timeout_ms,
            metrics=self.metrics.bulk,
        )
        result = await bulk.import_rows(reported, started.on_conflict)
        if not await status.succeed(session, job, result):
            raise ImportCancelled()
        await status.delete_upload(session, job)
        await queue.done(session, job)
        await session.commit()

    async def _commit(self, session: AsyncSession, job: int, outcome: Outcome | None, *, done: bool = True) -> None:
        """`outcome` and the entry's deletion (unless not `done`) in the holding transaction; COMMIT."""
        if outcome is not None:
            await outcome(session)
        if done:
            await queue.done(session, job)
        await session.commit()

    async def _end(
        self,
        session: AsyncSession,
        savepoint: AsyncSessionTransaction,
        job: int,
        outcome: Outcome,
        *,
        done: bool = True,
    ) -> None:
        """The rows rolled back, `outcome` committed with the entry's fate; on a fresh connection if the import's
        own is gone (a deadlock, a lost connection: the lock went with it)."""
        try:
            await savepoint.rollback()
            await self._commit(session, job, outcome, done=done)
        except Exception as exc:  # noqa: BLE001
            logger.warning("import job %d: outcome not written on its own connection (%s)", job, type(exc).__name__)

            async def whole(transaction: status.Transaction) -> None:
                await outcome(transaction)
                if done:
                    await queue.done(transaction, job)

            await self._record(job, whole, held=False)

    async def _record(self, job: int, outcome: Outcome, *, held: bool) -> None:
        """`outcome` in a transaction of its own on a fresh connection, tried again on another if that fails.
        Unless this worker still `held` the entry, only if the entry is there and no one else holds it."""
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                async with self.engine.connect() as connection, connection.begin():
                    if held or await queue.take_one(connection, job):
                        await outcome(connection)
            except Exception as exc:
                if attempt == RECORD_ATTEMPTS:
                    raise
                logger.warning("import status write failed (%s: %s); trying again", type(exc).__name__, exc)
                await asyncio.sleep(RECORD_BACKOFF * 2 ** (attempt - 1))
            else:
                return


async def _reporting(
    chunks: AsyncIterator[list[Row]], progress: EachCommits, job: int, attempt: int
) -> AsyncIterator[list[Row]]:
    """`chunks`, recording the rows done after each (an UPDATE and a SELECT); ImportCancelled once asked to."""
    done = 0
    async for chunk in chunks:
        done += len(chunk)
        if await status.progress(progress, job, attempt, done):
            raise ImportCancelled()
        yield chunk
