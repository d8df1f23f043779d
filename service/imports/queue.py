"""The job queue: pgqueuer's queries under the names of service.db.queue, for the API and the worker.

pgqueuer's trigger wakes the workers (NOTIFY) when an entry is inserted or deleted, not when one is updated: its
retries are UPDATEs, so a retry also sends the trigger's NOTIFY itself, and an idle worker takes a job given back
by another at once, not at its next poll.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import asyncpg
from pgqueuer.adapters.drivers.asyncpg import AsyncpgDriver
from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment, QueryQueueBuilder, QuerySchedulerBuilder
from pgqueuer.adapters.persistence.queries import Queries
from pgqueuer.domain.models import Job, TracebackRecord

from service.db.queue import ENTRYPOINT, SETTINGS

# The payload pgqueuer's trigger sends (fn_pgqueuer_changed), for an UPDATE.
_CHANGED = """SELECT pg_notify($1, json_build_object(
    'channel', $1::text, 'operation', 'update', 'sent_at', now(), 'table', $2::text, 'type', 'table_changed_event'
)::text)"""


@dataclasses.dataclass
class _Queries(Queries):
    async def retry_job(self, job: Job, delay: timedelta, traceback_record: TracebackRecord | None) -> None:
        await super().retry_job(job, delay, traceback_record)
        await self.driver.execute(_CHANGED, SETTINGS.channel, SETTINGS.queue_table)


def queries(connection: asyncpg.Connection) -> Queries:
    """pgqueuer's queries over one asyncpg connection (in a transaction or not: the caller's choice)."""
    return _Queries(
        AsyncpgDriver(connection),
        qbe=QueryBuilderEnvironment(SETTINGS),
        qbq=QueryQueueBuilder(SETTINGS),
        qbs=QuerySchedulerBuilder(SETTINGS),
    )


def install_sql() -> str:
    """pgqueuer's own DDL for its tables, type, indexes and trigger (what `pgq install` runs), which migration 0005
    holds as text (a test compares the two)."""
    return QueryBuilderEnvironment(SETTINGS).build_install_query(create_schema=False)


async def enqueue(connection: asyncpg.Connection, *job_ids: int) -> None:
    """Queue jobs `job_ids` on `connection`, inside its transaction if it has one (one round trip).

    The INSERT's trigger NOTIFYs the workers as it commits: an idle one starts the job at once."""
    payloads: list[bytes | None] = [str(job_id).encode() for job_id in job_ids]
    await queries(connection).enqueue([ENTRYPOINT] * len(payloads), payloads, [0] * len(payloads))
