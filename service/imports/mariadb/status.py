"""A worker's writes of its job on MariaDB, as service.imports.jobs writes them on PostgreSQL: started (an attempt
counted), progress, and the outcome.

Started and progress go on the worker's autocommit connection, visible while the import runs; the outcome
(succeeded, failed, cancelled, queued again) in the transaction that holds the job's queue entry, committed with
it. MariaDB has no UPDATE ... RETURNING: a start and a progress report are an UPDATE and a SELECT. NOW(6) is the
statement's time, as PostgreSQL's clock_timestamp().
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service.db.autocommit import EachCommits
from service.developers.schemas import BulkCreateResult
from service.imports.jobs import JobState, Started

_STATE = text("SELECT status, attempts, cancel_requested FROM import_jobs WHERE id = :id")
_START = text("""
    UPDATE import_jobs SET status = 'running', attempts = attempts + 1, started_at = NOW(6), rows_done = 0
    WHERE id = :id AND status IN ('queued', 'running') AND NOT cancel_requested""")
_STARTED = text("SELECT media_type, on_conflict, attempts FROM import_jobs WHERE id = :id")
# Only the attempt that holds the job writes its progress (a worker whose import connection was killed may still
# report once before it notices).
_PROGRESS = text("UPDATE import_jobs SET rows_done = :rows WHERE id = :id AND attempts = :attempt")
_CANCEL_REQUESTED = text("SELECT cancel_requested FROM import_jobs WHERE id = :id")
_SUCCEED = text("""
    UPDATE import_jobs SET status = 'succeeded', rows_total = :total, rows_done = :total, created = :created,
        updated = :updated, skipped = :skipped, finished_at = NOW(6)
    WHERE id = :id AND status = 'running' AND NOT cancel_requested""")
_FINISH = text("""
    UPDATE import_jobs SET status = :status, error = :error, finished_at = NOW(6)
    WHERE id = :id AND status IN ('queued', 'running')""")
_DELETE_UPLOAD = text("DELETE FROM import_uploads WHERE job_id = :id")
_REQUEUE = text("""
    UPDATE import_jobs SET status = 'queued', attempts = GREATEST(attempts - :refund, 0), started_at = NULL,
        rows_done = 0
    WHERE id = :id AND status = 'running'""")
_DELETE_FINISHED = text("DELETE FROM import_jobs WHERE finished_at < NOW(6) - INTERVAL :hours HOUR LIMIT :batch")

Transaction = AsyncSession | AsyncConnection


async def state(connection: EachCommits, job_id: int) -> JobState | None:
    row = (await connection.execute(_STATE, {"id": job_id})).one_or_none()
    return None if row is None else JobState(row.status, row.attempts, bool(row.cancel_requested))


async def start(connection: EachCommits, job_id: int) -> Started | None:
    """Mark the job running and count the attempt; None if it was cancelled (or finished) meanwhile."""
    if not (await connection.execute(_START, {"id": job_id})).rowcount:
        return None
    row = (await connection.execute(_STARTED, {"id": job_id})).one()
    return Started(row.media_type, row.on_conflict, row.attempts)


async def progress(connection: EachCommits, job_id: int, attempt: int, rows: int) -> bool:
    """Record `rows` done by attempt `attempt`; whether a cancel has been requested."""
    await connection.execute(_PROGRESS, {"id": job_id, "attempt": attempt, "rows": rows})
    return bool((await connection.execute(_CANCEL_REQUESTED, {"id": job_id})).scalar_one())


async def succeed(transaction: Transaction, job_id: int, result: BulkCreateResult) -> bool:
    """In the import transaction: the job succeeded with `result`; False if a cancel came first."""
    total = result.created + result.updated + result.skipped
    params = {"id": job_id, "total": total, **msgspec.structs.asdict(result)}
    return bool((await transaction.execute(_SUCCEED, params)).rowcount)  # type: ignore[attr-defined]


async def finish(transaction: Transaction, job_id: int, status: str, error: dict[str, Any] | None = None) -> None:
    """The job ended `failed` (with its problem) or `cancelled`; its upload is no longer needed."""
    encoded = None if error is None else msgspec.json.encode(error).decode()
    await transaction.execute(_FINISH, {"id": job_id, "status": status, "error": encoded})
    await transaction.execute(_DELETE_UPLOAD, {"id": job_id})


async def delete_upload(transaction: Transaction, job_id: int) -> None:
    await transaction.execute(_DELETE_UPLOAD, {"id": job_id})


async def requeue(transaction: Transaction, job_id: int, *, refund: bool) -> None:
    await transaction.execute(_REQUEUE, {"id": job_id, "refund": int(refund)})


async def delete_finished(connection: EachCommits, hours: int, batch: int = 1000) -> int:
    """Delete up to `batch` jobs finished more than `hours` ago (their uploads and entries go with them); how many."""
    return int((await connection.execute(_DELETE_FINISHED, {"hours": hours, "batch": batch})).rowcount)
