"""The routes' side of import jobs on MariaDB: submit, read, list, cancel, in the request's session, as
service.imports.jobs does on PostgreSQL (the same answers).

What MariaDB lacks: UPDATE ... RETURNING (a cancel is SELECT ... FOR UPDATE, UPDATE, SELECT), COPY (the upload's
pieces are INSERTs of LONGBLOBs, about 1 MiB each: under max_allowed_packet, 16 MiB by default) and timestamps
with a zone (DATETIME(6) holds UTC: read back, they are marked so). A submission's queue entry is a row of
import_queue, inserted in the same transaction (service.imports.mariadb.queue).
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import isolation
from service.developers.schemas import OnConflict
from service.imports.errors import ImportJobFinished, ImportJobNotFound
from service.imports.mariadb import queue
from service.imports.schemas import ImportJob, ImportJobPage
from service.imports.uploads import PIECE

COLUMNS = (
    "id, status, on_conflict, rows_total, rows_done, created, updated, skipped, error, "
    "cancel_requested, created_at, started_at, finished_at, submitted_by"
)
_TIMES = ("created_at", "started_at", "finished_at")
# `:viewer` is the caller's account id, or NULL for an admin, who may see every job.
_MINE = "(:viewer IS NULL OR submitted_by = :viewer)"
_INSERT = text(f"""
    INSERT INTO import_jobs (status, on_conflict, media_type, submitted_by)
    VALUES ('queued', :on_conflict, :media_type, :submitted_by) RETURNING {COLUMNS}""")  # noqa: S608
_GET = text(f"SELECT {COLUMNS} FROM import_jobs WHERE id = :id AND {_MINE}")  # noqa: S608
_LIST = text(f"""
    SELECT {COLUMNS} FROM import_jobs
    WHERE {_MINE} AND (:before IS NULL OR id < :before)
    ORDER BY id DESC LIMIT :limit""")  # noqa: S608
_PIECE = text("INSERT INTO import_uploads (job_id, seq, data) VALUES (:job_id, :seq, :data)")
_LOCK = text(f"SELECT status FROM import_jobs WHERE id = :id AND {_MINE} FOR UPDATE")  # noqa: S608
# MariaDB assigns left to right, each assignment seeing the ones before it: finished_at reads the old status.
_CANCEL = text("""
    UPDATE import_jobs SET finished_at = IF(status = 'queued', NOW(6), finished_at), cancel_requested = 1,
        status = IF(status = 'queued', 'cancelled', status)
    WHERE id = :id""")
_DELETE_UPLOAD = text("DELETE FROM import_uploads WHERE job_id = :job_id")


def job_of(row: Row[Any]) -> ImportJob:
    fields = dict(row._mapping)
    if fields["error"] is not None:
        fields["error"] = msgspec.json.decode(fields["error"])
    fields["cancel_requested"] = bool(fields["cancel_requested"])
    for name in _TIMES:
        if isinstance(at := fields[name], datetime):
            fields[name] = at.replace(tzinfo=UTC)
    return msgspec.convert(fields, ImportJob)


class MariaDBImportJobs:
    """The routes' side of import jobs on MariaDB, in the request's session (one transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def submit(
        self, media_type: str, on_conflict: OnConflict, submitted_by: int, body: AsyncIterable[bytes]
    ) -> ImportJob:
        """Create the job, store its body and queue it: durable together when the request's transaction commits.

        Round trips: the INSERT ... RETURNING, one INSERT per MiB of body, the queue's INSERT, COMMIT (asyncmy
        sends no BEGIN: the session's first statement opens the transaction)."""
        await isolation.begin(self.session, "imports.submit")
        params = {"on_conflict": on_conflict, "media_type": media_type, "submitted_by": submitted_by}
        job = job_of((await self.session.execute(_INSERT, params)).one())
        await self._store(job.id, body)
        await queue.enqueue(self.session, job.id)
        return job

    async def _store(self, job_id: int, body: AsyncIterable[bytes]) -> None:
        """The body in pieces of PIECE bytes, one INSERT each as they fill: memory holds one piece."""
        seq = 0
        buffer = bytearray()
        async for data in body:
            buffer += data
            while len(buffer) >= PIECE:
                await self._piece(job_id, seq, bytes(buffer[:PIECE]))
                del buffer[:PIECE]
                seq += 1
        if buffer:
            await self._piece(job_id, seq, bytes(buffer))

    async def _piece(self, job_id: int, seq: int, data: bytes) -> None:
        await self.session.execute(_PIECE, {"job_id": job_id, "seq": seq, "data": data})

    async def get(self, job_id: int, viewer: int | None) -> ImportJob:
        row = (await self.session.execute(_GET, {"id": job_id, "viewer": viewer})).one_or_none()
        if row is None:
            raise ImportJobNotFound(job_id)
        return job_of(row)

    async def list(self, viewer: int | None, before: int | None, limit: int) -> ImportJobPage:
        params = {"viewer": viewer, "before": before, "limit": limit + 1}
        items = [job_of(row) for row in (await self.session.execute(_LIST, params)).all()]
        more = len(items) > limit
        items = items[:limit]
        return ImportJobPage(items=items, next_cursor=str(items[-1].id) if more else None)

    async def cancel(self, job_id: int, viewer: int | None) -> ImportJob:
        """Round trips: the row locked (it waits for a worker's own write of it), the UPDATE, the job read back."""
        await isolation.begin(self.session, "imports.cancel")
        status = (await self.session.execute(_LOCK, {"id": job_id, "viewer": viewer})).scalar_one_or_none()
        if status is None:
            raise ImportJobNotFound(job_id)
        if status not in ("queued", "running"):
            raise ImportJobFinished(job_id, status)
        await self.session.execute(_CANCEL, {"id": job_id})
        job = await self.get(job_id, viewer)
        if job.status == "cancelled":
            await self.session.execute(_DELETE_UPLOAD, {"job_id": job_id})
        return job
