"""What the worker tests do to a running import, and how they read what the queue did about it: an import held
midway by a lock, a worker's backends terminated by kind, and pgqueuer's own log of a queue entry (its retries,
with the delay each asked for, and its picks, with the database's times)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from tests.database import fetch, fetchval, holding, queue_tables
from tests.pgbouncer import POOLED_RUN
from tests.polling import until

# A worker's backends by kind, as pg_stat_activity tells them apart (application_name: service.imports.worker).
# Mid-import the import transaction has written rows, so it holds a transaction id; its status connection
# (progress, the upload's pieces) runs autocommit statements, and holds none between them.
# Through the run's PgBouncer (TEST_DB_POOLER=transaction) a server connection carries the application_name of the
# last client it served: the worker's status statements run on whichever idle one PgBouncer hands out next, and an
# idle one the API's last request took says 'devdir' (PgBouncer reuses the most recent first, so after the API has
# read the job's progress, the server connection of the worker's last status write usually does). There every idle
# server connection is one the status statements may take next; PgBouncer drops a terminated idle one and opens
# another, as it would in production.
_STATUS_NAMES = "('devdir worker', 'devdir')" if POOLED_RUN else "('devdir worker')"
WORKER_BACKENDS = {
    "status": f"application_name IN {_STATUS_NAMES} AND backend_xid IS NULL",
    "import": "application_name = 'devdir worker' AND backend_xid IS NOT NULL",
    "queue": "application_name = 'devdir worker queue'",
    "all": "application_name LIKE 'devdir worker%'",
}


ROW_5000 = "INSERT INTO developers (name, email, specialty) VALUES ('B', 'dev4999@bulk.io', 'b')"


class HeldRow:
    """An open transaction holding a row, on a connection of its own (tests.database.holding), on either server."""

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._connection: AsyncConnection | None = None

    async def begin(self, url: str, statement: str) -> None:
        self._connection = await self._stack.enter_async_context(holding(url, statement))

    async def rollback(self) -> None:
        """End the transaction now: what it held is free, and it wrote nothing."""
        if self._connection is not None:
            await self._connection.rollback()

    async def close(self) -> None:
        await self._stack.aclose()


async def hold_row_5000(database_url: str) -> HeldRow:
    """An open transaction holding the email of row 5,000: an import of people(n > 5000) waits there, midway."""
    held = HeldRow()
    try:
        await held.begin(
            database_url, "INSERT INTO developers (name, email, specialty) VALUES ('B', 'dev4999@bulk.io', 'b')"
        )
    except BaseException:
        await held.close()
        raise
    return held


async def terminate(database_url: str, backends: str, within: float = 10) -> int:
    """Terminate the backends WORKER_BACKENDS names `backends`; how many there were. Tried again until one is
    found: a status connection holds a transaction id for the moment of each of its statements."""
    where = f"datname = current_database() AND {WORKER_BACKENDS[backends]}"  # not another test run's
    query = f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {where}"
    deadline = time.monotonic() + within
    while True:
        killed = int(await fetchval(database_url, query))
        if killed or time.monotonic() > deadline:
            return killed
        await asyncio.sleep(0.02)


async def until_queue_empty(database_url: str) -> None:
    async def empty() -> bool:
        return bool(await fetchval(database_url, f"SELECT count(*) FROM {queue_tables(database_url)[0]}") == 0)

    await until(empty, "the queue to empty")


async def queue_entry(database_url: str, job_id: int) -> int:
    """The id of job `job_id`'s queue entry (while it has one)."""
    query = f"SELECT id FROM pgqueuer WHERE payload = convert_to('{job_id}', 'UTF8')"
    entry = await fetchval(database_url, query)
    assert entry is not None, f"job {job_id} has no queue entry"
    return int(entry)


@dataclass(frozen=True)
class Logged:
    """One line of pgqueuer's log of an entry: queued (a retry when it has a delay), picked, successful, ..."""

    status: str
    at: datetime
    delay: timedelta | None  # what a retry asked for


async def queue_log(database_url: str, entry: int) -> list[Logged]:
    rows = await fetch(
        database_url, "SELECT status::text, created, traceback FROM pgqueuer_log WHERE job_id = $1 ORDER BY id", entry
    )
    return [Logged(row["status"], row["created"], _delay(row["traceback"])) for row in rows]


def _delay(traceback: str | None) -> timedelta | None:
    if traceback is None:
        return None
    delay = json.loads(traceback).get("additional_context", {}).get("retry_delay")
    if delay is None:
        return None
    hours, minutes, seconds = delay.split(":")
    return timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))


def retries(log: list[Logged]) -> list[tuple[timedelta, float]]:
    """(the delay asked for, the seconds until the entry was picked again) for each retry in `log`."""
    found = []
    for i, line in enumerate(log):
        if line.delay is not None:
            picked = next((later.at for later in log[i + 1 :] if later.status == "picked"), None)
            assert picked is not None, f"a retry never picked again: {log}"
            found.append((line.delay, (picked - line.at).total_seconds()))
    return found
