"""The isolation level of every write, with the reason for it, and how a transaction is begun at that level.

READ COMMITTED is the default, and it is enough wherever the database itself decides each race whatever the
level: a unique index (two emails that differ only in case), the row lock an UPDATE or DELETE takes, a statement
that reads and writes in one go (`INSERT ... ON CONFLICT`, `UPDATE ... RETURNING`). A stronger level is declared
only where a write first reads something and decides on it, so that a concurrent write could make the decision
wrong: the last active admin.

The level is given to the transaction as it begins (`session.connection(execution_options=...)` before its first
statement), and asyncpg writes it into the BEGIN it sends anyway (`BEGIN ISOLATION LEVEL ...`): declaring a level
costs no round trip.

An operation declared `replay` runs its whole transaction, COMMIT included, inside `replayed()`: a serialization
failure (40001) or a deadlock (40P01; MariaDB's 1213: service.db.errors), at any statement or at COMMIT, rolls
the attempt back, waits a jittered backoff and runs it again from what the request already holds in memory (its
parsed body, never the socket), up to ATTEMPTS times; the last attempt's error becomes the usual 503 with
Retry-After (service.web.problems). Only work that is safe to repeat is declared so: a streamed body was consumed
as it was written, so the imports are not.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from service.db.consistency import capture
from service.db.errors import error_name, is_retryable

logger = logging.getLogger("service.db.isolation")

Level = Literal["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"]
# asyncpg's own names, for the paths that begin a transaction on asyncpg directly.
DRIVER_LEVELS: dict[Level, str] = {
    "READ COMMITTED": "read_committed",
    "REPEATABLE READ": "repeatable_read",
    "SERIALIZABLE": "serializable",
}

# Attempts of a replayed transaction, the first included. Each retry waits a random time between 0 and
# BACKOFF_SECONDS x 2^(retry - 1), at most BACKOFF_MAX_SECONDS ("full jitter": two requests that collided once
# do not come back in step and collide again).
ATTEMPTS = 4
BACKOFF_SECONDS = 0.02
BACKOFF_MAX_SECONDS = 0.5


@dataclass(frozen=True)
class Isolation:
    level: Level = "READ COMMITTED"
    # The whole transaction is run again on 40001/40P01 (replayed()); else it is the request's transaction,
    # committed before the answer leaves (service.web.transaction), and a conflict is answered 503 at once.
    replay: bool = False


Operation = Literal[
    "developers.create",
    "developers.update",
    "developers.delete",
    "developers.update_many",
    "developers.delete_many",
    "developers.import",
    "accounts.create",
    "accounts.first_admin",
    "accounts.update",
    "accounts.delete",
    "imports.submit",
    "imports.cancel",
    "imports.run",
    "events.retention",
]

READ_COMMITTED = Isolation()

# Every write path, with its level and why. (One read declares a level of its own: the export, SERIALIZABLE READ
# ONLY DEFERRABLE, one snapshot for a stream of any length: service.developers.export.service.) Writes that run as
# single autocommit statements (a worker's job status and progress, the deletion of finished jobs) are READ
# COMMITTED by PostgreSQL's default and are not listed: each statement is its own transaction, with nothing read
# before it to go stale.
WRITES: dict[Operation, Isolation] = {
    # One statement each. Two emails that differ only in case are refused by the unique index on lower(email),
    # and an UPDATE or DELETE locks its row and re-reads it if a concurrent write changed it: the last writer
    # wins per request, as a PATCH means. SERIALIZABLE would add failures and prevent nothing.
    "developers.create": READ_COMMITTED,
    "developers.update": READ_COMMITTED,
    "developers.delete": READ_COMMITTED,
    # One set-based statement, checked by the same unique index, row by row; nothing is read first to decide on.
    # Not replayed: a batch may run for BULK_STATEMENT_TIMEOUT_MS, and four of those would hold a connection far
    # longer than a client's own retry after the 503 (a deadlock needs two batches locking shared rows in
    # opposite orders).
    "developers.update_many": READ_COMMITTED,
    "developers.delete_many": READ_COMMITTED,
    # COPY, then INSERT ... ON CONFLICT for skip/update: the unique index decides, and under READ COMMITTED
    # ON CONFLICT DO UPDATE always updates the row it meets; at REPEATABLE READ or above it would fail instead
    # whenever a concurrent import touched the same email. Not replayed: the body streamed through once.
    "developers.import": READ_COMMITTED,
    # New accounts: the unique index on lower(email) decides a race between two of the same email.
    "accounts.create": READ_COMMITTED,
    # INSERT ... SELECT ... WHERE NOT EXISTS: two processes starting at once both insert the same
    # DEVDIR_ADMIN_EMAIL, and the unique index refuses the second (its start-up logs it and goes on).
    "accounts.first_admin": READ_COMMITTED,
    # The last-admin rule reads the active admins, then demotes, deactivates or deletes one: two admins doing
    # that to each other at once is write skew, which only SERIALIZABLE catches without locks. One of the two is
    # rolled back with 40001 and replayed, and then sees the other's change: 409, never zero admins. Every path
    # that can take an active admin away is one of these two (SERIALIZABLE protects only against other
    # SERIALIZABLE transactions). The body is a parsed Struct and the password already hashed: safe to replay.
    "accounts.update": Isolation("SERIALIZABLE", replay=True),
    "accounts.delete": Isolation("SERIALIZABLE", replay=True),
    # A new job row, its upload and a queue entry: all new rows, nothing read. Not replayed: streamed body.
    "imports.submit": READ_COMMITTED,
    # One UPDATE on the job with FOR UPDATE: it waits for a worker's status write and then sees its outcome.
    # At REPEATABLE READ or above that wait would end in 40001 instead, every time the worker had moved on.
    "imports.cancel": READ_COMMITTED,
    # A worker's import transaction. Its job's status and progress are written meanwhile on another connection,
    # which commits; the final `succeeded` UPDATE must see the latest of them (a cancel requested meanwhile),
    # which READ COMMITTED does and REPEATABLE READ would answer with 40001. A failed import is retried as a
    # whole by the queue (IMPORT_MAX_ATTEMPTS), never here.
    "imports.run": READ_COMMITTED,
    # Deletes events older than the retention, one batch per transaction, one process at a time (an advisory
    # lock): rows no one writes any more.
    "events.retention": READ_COMMITTED,
}

T = TypeVar("T")


async def begin(session: AsyncSession, operation: Operation) -> None:
    """Begin `session`'s transaction at the level `operation` declares (no round trip: the level goes into the
    BEGIN sent before its first statement). A write that joins a transaction already begun (a worker's import inside its
    job's transaction) keeps that transaction's level."""
    declared = WRITES[operation]
    if declared.replay:
        raise ValueError(f"{operation} is declared replayed: run it with replayed()")
    if not session.in_transaction():
        await session.connection(execution_options={"isolation_level": declared.level})


async def replayed(
    session: AsyncSession,
    operation: Operation,
    attempt: Callable[[], Awaitable[T]],
    retried: Callable[[str], None] | None = None,
) -> T:
    """Run `attempt` in a transaction of its own at `operation`'s level and commit it, replaying the whole of it
    on a serialization failure or a deadlock, at most ATTEMPTS times in all; `retried(operation)` is told of each
    retry. Any other error, or the last attempt's, is raised with the transaction still open, for the request to
    roll back as it does any error."""
    declared = WRITES[operation]
    if not declared.replay:
        raise ValueError(f"{operation} is not declared replayed: begin it with begin()")
    if session.in_transaction():
        raise RuntimeError(f"{operation} must begin its own transaction, to replay all of it")
    for number in range(1, ATTEMPTS + 1):
        await session.connection(execution_options={"isolation_level": declared.level})
        try:
            result = await attempt()
            await capture(session)  # its id for the answer's Consistency-Token, when standbys serve reads
            await session.commit()  # inside the loop: under SERIALIZABLE, COMMIT itself may fail with 40001
        except Exception as exc:
            if number == ATTEMPTS or not is_retryable(exc):
                raise
            await session.rollback()
            logger.debug("%s: %s on attempt %d; replaying", operation, error_name(exc), number)
        else:
            return result
        if retried is not None:
            retried(operation)
        await asyncio.sleep(random.uniform(0, min(BACKOFF_MAX_SECONDS, BACKOFF_SECONDS * 2 ** (number - 1))))  # noqa: S311
    raise AssertionError("unreachable: the last attempt returns or raises")
