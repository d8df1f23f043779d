"""The job queue on MariaDB: `import_queue (job_id, run_after)`, one row per job not yet ended.

- enqueue: a row inserted in the submitting request's transaction (durable with the job and its upload);
- take and hold: `FOR UPDATE SKIP LOCKED` in the transaction that will import the rows (READ COMMITTED), which
  keeps the row lock for the whole import: no other worker can take the job while it runs, and a worker that
  dies (its connection dropped, its transaction rolled back by InnoDB) releases it for the next taker;
- retry: `run_after` moved forward, under the lock;
- finish: the row deleted in the transaction that writes the job's outcome, committed with it (and, when the job
  succeeded, with its rows).
No NOTIFY: workers poll (service.imports.mariadb.loop).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

_ENQUEUE = text("INSERT INTO import_queue (job_id) VALUES (:job_id)")
# The (run_after, job_id) index serves the order; locked rows (jobs running elsewhere) are passed over.
_TAKE = text("""
    SELECT job_id FROM import_queue WHERE run_after <= NOW(6)
    ORDER BY run_after, job_id LIMIT 1 FOR UPDATE SKIP LOCKED""")
# One job's entry, if no worker holds it (a retry written after the import's own connection was lost).
_TAKE_ONE = text("SELECT job_id FROM import_queue WHERE job_id = :job_id FOR UPDATE SKIP LOCKED")
_RETRY = text("UPDATE import_queue SET run_after = NOW(6) + INTERVAL :ms * 1000 MICROSECOND WHERE job_id = :job_id")
_DONE = text("DELETE FROM import_queue WHERE job_id = :job_id")

Connection = AsyncSession | AsyncConnection


async def enqueue(connection: Connection, job_id: int) -> None:
    await connection.execute(_ENQUEUE, {"job_id": job_id})


async def take(connection: Connection) -> int | None:
    """The next due job, locked until the caller's transaction ends; None when none is due (or all are held)."""
    job_id = (await connection.execute(_TAKE)).scalar_one_or_none()
    return None if job_id is None else int(job_id)


async def take_one(connection: Connection, job_id: int) -> bool:
    """Whether `job_id`'s entry is there and now held by the caller's transaction."""
    return (await connection.execute(_TAKE_ONE, {"job_id": job_id})).scalar_one_or_none() is not None


async def retry(connection: Connection, job_id: int, delay: float) -> None:
    """Run the held entry again `delay` seconds from now."""
    await connection.execute(_RETRY, {"job_id": job_id, "ms": round(delay * 1000)})


async def done(connection: Connection, job_id: int) -> None:
    await connection.execute(_DONE, {"job_id": job_id})
