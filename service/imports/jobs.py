"""The jobs table's SQL: what the routes do with a job (submit, read, list, cancel) and what a worker does to it
(start, report progress, finish). No HTTP here.

The routes work in the request's session, so the plugin commits or rolls back. The worker reports status and
progress on an autocommit connection of its own, so they are visible while its import transaction is still open;
only `succeed` runs inside the import transaction, so the rows and the status commit together.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any, cast

import asyncpg
import msgspec
from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import isolation
from service.db.autocommit import EachCommits
from service.db.queue import ENTRYPOINT, SETTINGS
from service.developers.schemas import BulkCreateResult, OnConflict
from service.imports import queue, uploads
from service.imports.errors import ImportJobFinished, ImportJobNotFound
from service.imports.schemas import ImportJob, ImportJobPage

_COLUMNS = (
    "id, status, on_conflict, rows_total, rows_done, created, updated, skipped, error::text AS error, "
    "cancel_requested, created_at, started_at, finished_at, submitted_by"
)
# `:viewer` is the caller's account id, or NULL for an admin, who may see every job.
_MINE = "(CAST(:viewer AS bigint) IS NULL OR submitted_by = :viewer)"
_INSERT = text(f"""
    INSERT INTO import_jobs (status, on_conflict, media_type, submitted_by)
    VALUES ('queued', :on_conflict, :media_type, :submitted_by) RETURNING {_COLUMNS}""")  # noqa: S608
_GET = text(f"SELECT {_COLUMNS} FROM import_jobs WHERE id = :id AND {_MINE}")  # noqa: S608
# Newest first; the (submitted_by, id) index serves a submitter's pages, the primary key an admin's.
_LIST = text(f"""
    SELECT {_COLUMNS} FROM import_jobs
    WHERE {_MINE} AND (CAST(:before AS bigint) IS NULL OR id < :before)
    ORDER BY id DESC LIMIT :limit""")  # noqa: S608
# A queued job is cancelled at once; a running one is asked to stop (its worker looks after each chunk of rows).
# FOR UPDATE waits for a worker's own update of the row, then sees its outcome.
_CANCEL = text(f"""
    WITH target AS (SELECT id, status FROM import_jobs WHERE id = :id AND {_MINE} FOR UPDATE)
    UPDATE import_jobs j SET
        cancel_requested = true,
        status = CASE WHEN t.status = 'queued' THEN 'cancelled' ELSE j.status END,
        finished_at = CASE WHEN t.status = 'queued' THEN clock_timestamp() END
    FROM target t WHERE j.id = t.id AND t.status IN ('queued', 'running')
    RETURNING j.id, j.status, j.on_conflict, j.rows_total, j.rows_done, j.created, j.updated, j.skipped,
        j.error::text AS error, j.cancel_requested, j.created_at, j.started_at, j.finished_at, j.submitted_by""")  # noqa: S608

_STATE = text("SELECT status, attempts, cancel_requested FROM import_jobs WHERE id = :id")
# Job times are clock_timestamp(), not now(): an import's transaction may have begun before its job was marked
# running, and now() is the transaction's start.
_START = text("""
    UPDATE import_jobs SET status = 'running', attempts = attempts + 1, started_at = clock_timestamp(), rows_done = 0
    WHERE id = :id AND status IN ('queued', 'running') AND NOT cancel_requested
    RETURNING media_type, on_conflict, attempts""")
_PROGRESS = text("UPDATE import_jobs SET rows_done = :rows WHERE id = :id RETURNING cancel_requested")
# Inside the import transaction, whose now() is its start (before even started_at): the time of this statement.
_SUCCEED = text("""
    UPDATE import_jobs SET status = 'succeeded', rows_total = :total, rows_done = :total, created = :created,
        updated = :updated, skipped = :skipped, finished_at = clock_timestamp()
    WHERE id = :id AND status = 'running' AND NOT cancel_requested RETURNING id""")
# One statement, so nobody sees the job finished while its upload is still there.
_FINISH = text("""
    WITH finished AS (
        UPDATE import_jobs SET status = :status, error = CAST(:error AS jsonb), finished_at = clock_timestamp()
        WHERE id = :id AND status IN ('queued', 'running'))
    DELETE FROM import_uploads WHERE job_id = :id""")
# A worker that stops mid-import (SIGTERM past WORKER_SHUTDOWN_SECONDS) gives the job back, and its attempt.
_REQUEUE = text("""
    UPDATE import_jobs SET status = 'queued', attempts = greatest(attempts - :refund, 0), started_at = NULL,
        rows_done = 0
    WHERE id = :id AND status = 'running'""")
# Unfinished jobs without a queue entry (whose payload is the job id in ASCII digits): nothing would run or end
# them. `finished_at IS NULL` is what the finished_at index finds; the queue holds only entries not yet done.
_ORPHANED = text(f"""
    SELECT id FROM import_jobs j
    WHERE finished_at IS NULL AND status IN ('queued', 'running') AND NOT EXISTS (
        SELECT FROM {SETTINGS.queue_table} q
        WHERE q.entrypoint = :entrypoint AND q.payload = convert_to(j.id::text, 'UTF8'))
    ORDER BY id LIMIT :batch""")  # noqa: S608
_DELETE_FINISHED = text("""
    WITH gone AS (
        DELETE FROM import_jobs WHERE id IN (
            SELECT id FROM import_jobs WHERE finished_at < now() - make_interval(hours => :hours) LIMIT :batch)
        RETURNING 1)
    SELECT count(*) FROM gone""")


def _job(row: Row[Any]) -> ImportJob:
    fields = dict(row._mapping)
    if fields["error"] is not None:
        fields["error"] = msgspec.json.decode(fields["error"])
    return msgspec.convert(fields, ImportJob)


class ImportJobs:
    """The routes' side of import jobs, in the request's session (one transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def submit(
        self, media_type: str, on_conflict: OnConflict, submitted_by: int, body: AsyncIterable[bytes]
    ) -> ImportJob:
        """Create the job, store its body and queue it: durable together when the request's transaction commits.

        Round trips: BEGIN, the INSERT, one COPY per MiB of body, the queue's INSERT, COMMIT.
        """
        await isolation.begin(self.session, "imports.submit")
        params = {"on_conflict": on_conflict, "media_type": media_type, "submitted_by": submitted_by}
        job = _job((await self.session.execute(_INSERT, params)).one())
        driver = await _driver(self.session)
        await uploads.store(driver, job.id, body)
        await queue.enqueue(driver, job.id)
        return job

    async def get(self, job_id: int, viewer: int | None) -> ImportJob:
        row = (await self.session.execute(_GET, {"id": job_id, "viewer": viewer})).one_or_none()
        if row is None:
            raise ImportJobNotFound(job_id)
        return _job(row)

    async def list(self, viewer: int | None, before: int | None, limit: int) -> ImportJobPage:
        params = {"viewer": viewer, "before": before, "limit": limit + 1}
        items = [_job(row) for row in (await self.session.execute(_LIST, params)).all()]
        more = len(items) > limit
        items = items[:limit]
        return ImportJobPage(items=items, next_cursor=str(items[-1].id) if more else None)

    async def cancel(self, job_id: int, viewer: int | None) -> ImportJob:
        await isolation.begin(self.session, "imports.cancel")
        row = (await self.session.execute(_CANCEL, {"id": job_id, "viewer": viewer})).one_or_none()
        if row is None:
            job = await self.get(job_id, viewer)  # 404 if it is not there (for this caller)
            raise ImportJobFinished(job_id, job.status)
        job = _job(row)
        if job.status == "cancelled":
            await uploads.delete(self.session, job_id)
        return job


async def _driver(session: AsyncSession) -> asyncpg.Connection:
    """The session's asyncpg connection, inside the transaction its first statement began."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = cast(asyncpg.Connection, raw.driver_connection)
    assert driver.is_in_transaction()
    return driver


# The worker's side: `connection` is an autocommit connection unless said otherwise.


class JobState(msgspec.Struct, frozen=True):
    status: str
    attempts: int
    cancel_requested: bool


class Started(msgspec.Struct, frozen=True):
    media_type: str
    on_conflict: OnConflict
    attempts: int


async def state(connection: EachCommits, job_id: int) -> JobState | None:
    row = (await connection.execute(_STATE, {"id": job_id})).one_or_none()
    return None if row is None else JobState(*row)


async def start(connection: EachCommits, job_id: int) -> Started | None:
    """Mark the job running and count the attempt; None if it was cancelled (or finished) meanwhile."""
    row = (await connection.execute(_START, {"id": job_id})).one_or_none()
    return None if row is None else Started(*row)


async def progress(connection: EachCommits, job_id: int, rows: int) -> bool:
    """Record `rows` done; whether a cancel has been requested."""
    return bool((await connection.execute(_PROGRESS, {"id": job_id, "rows": rows})).scalar_one())


async def succeed(session: AsyncSession, job_id: int, result: BulkCreateResult) -> bool:
    """Inside the import transaction: the job succeeded with `result`; False if a cancel came first."""
    total = result.created + result.updated + result.skipped
    params = {"id": job_id, "total": total, **msgspec.structs.asdict(result)}
    return (await session.execute(_SUCCEED, params)).one_or_none() is not None


async def finish(connection: EachCommits, job_id: int, status: str, error: dict[str, Any] | None = None) -> None:
    """The job ended `failed` (with its problem) or `cancelled`; its upload is no longer needed."""
    encoded = None if error is None else msgspec.json.encode(error).decode()
    await connection.execute(_FINISH, {"id": job_id, "status": status, "error": encoded})


async def requeue(connection: EachCommits, job_id: int, *, refund: bool) -> None:
    await connection.execute(_REQUEUE, {"id": job_id, "refund": int(refund)})


async def orphaned(connection: EachCommits, batch: int = 1000) -> list[int]:
    """Up to `batch` jobs, queued or running, that have no queue entry; their ids, in order."""
    params = {"entrypoint": ENTRYPOINT, "batch": batch}
    return [int(job_id) for job_id in (await connection.execute(_ORPHANED, params)).scalars()]


async def delete_finished(connection: EachCommits, hours: int, batch: int = 1000) -> int:
    """Delete up to `batch` jobs finished more than `hours` ago (their uploads go with them); how many."""
    return int((await connection.execute(_DELETE_FINISHED, {"hours": hours, "batch": batch})).scalar_one())
