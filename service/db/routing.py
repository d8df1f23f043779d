"""Where a read runs: a hot standby of DATABASE_REPLICA_URLS when one is fit to answer it, else the primary.

A standby is fit when the lag monitor (service.db.replicas) last saw it up and within DB_REPLICA_MAX_LAG_MS, and,
for a read that must see some writes (service.db.consistency.Need), when its last sampled snapshot already
included them. All of that is memory: choosing costs no round trip. The choice is then checked where it matters,
inside the read's own statement (`consistency.guard`), because a sample is a moment old and a URL may stand for
several standbys (a `-ro` service, a `ro` pooler): a statement whose snapshot lacks the write reports it, and the
read runs again elsewhere (`Behind`).

A read that fails on a standby, for any database reason, is run again on the next fit standby and finally on the
primary, so a standby that is down, restarting, or cancels the query on a conflict with recovery (SQLSTATE 40001)
never becomes an error answer. A standby whose connection failed is not chosen again until the monitor has
measured it again. Every read is counted once, where it finally ran: `devdir_db_reads_total{target, reason}`, the
reason saying why the primary served it (`token_ahead`, `lag`, `host_down`, `conflict`, `busy`; `no_replica`
without standbys), `fit` for a standby's; and every time a read sent to a standby is run again elsewhere,
`devdir_db_replica_retries_total{replica, reason}` (`behind`: its own statement found the snapshot without the
write it must see; `conflict`, `host_down`, `busy`).

Standbys are taken in turn (round robin) among those fit, so their load evens out.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from service.db.consistency import GUARD, Behind, Need
from service.db.replicas import ReplicaLag, Standby

logger = logging.getLogger("service.db.routing")

T = TypeVar("T")
Target = Literal["primary", "replica"]
Reason = Literal["fit", "no_replica", "token_ahead", "lag", "host_down", "conflict", "busy"]
REASONS: tuple[Reason, ...] = ("fit", "no_replica", "token_ahead", "lag", "host_down", "conflict", "busy")
# Why the primary served a read, the most telling first: when several standbys were unfit, the reason of the one
# that came closest.
_RANK: dict[Reason, int] = {"conflict": 0, "token_ahead": 1, "busy": 2, "lag": 3, "host_down": 4, "no_replica": 5}
# What a read may hit on a standby besides its answer: anything of the database or the connection to it. A new
# connection that the server refuses with an error (starting up, shutting down, too many connections) comes out of
# `engine.raw_connection()` as the asyncpg dialect's own DBAPI error, which is neither asyncpg's nor SQLAlchemy's.
_DATABASE_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    sa_exc.DBAPIError,  # a statement's error as SQLAlchemy wraps it
    sa_exc.TimeoutError,  # the standby's pool is full (busy)
    sa_exc.DisconnectionError,
    sa_exc.EmulatedDBAPIException,
    OSError,
    TimeoutError,
)

Count = Callable[[Target, Reason], None]
# Why a read was run again elsewhere after it was sent to a standby: its snapshot lacked the read's need (the check
# in its own statement), a conflict with recovery, the standby down, or its pool full.
Retry = Literal["behind", "conflict", "host_down", "busy"]
RETRIES: tuple[Retry, ...] = ("behind", "conflict", "host_down", "busy")
Retried = Callable[[str, Retry], None]


@dataclass(eq=False)
class Replica:
    standby: Standby  # as the monitor measures it
    engine: AsyncEngine  # the pool of reads sent to it


class ReadRouter:
    def __init__(
        self,
        primary: AsyncEngine,
        replicas: Sequence[Replica] = (),
        monitor: ReplicaLag | None = None,
        count: Count | None = None,
        retried: Retried | None = None,
    ) -> None:
        self.primary = primary
        self.replicas = tuple(replicas)
        self.monitor = monitor
        self.max_lag = monitor.max_lag if monitor is not None else 0.0
        self.count = count
        self.retried = retried
        self._turn = 0

    async def dispose(self, _app: object = None) -> None:
        """A shutdown hook: close the standbys' pools (the primary's is the plugin's)."""
        for replica in self.replicas:
            await replica.engine.dispose()

    def fit(self, need: Need) -> tuple[list[Replica], Reason]:
        """The standbys fit for a read that needs `need`, in the order to try them, and why the primary would serve
        it if none of them does."""
        if not self.replicas:
            return [], "no_replica"
        fit: list[Replica] = []
        reason: Reason = "host_down"
        count = len(self.replicas)
        self._turn = (self._turn + 1) % count
        for index in range(count):
            replica = self.replicas[(self._turn + index) % count]
            standby = replica.standby
            if not standby.up:
                unfit: Reason = "host_down"
            elif not standby.usable(self.max_lag):
                unfit = "lag"
            elif need and not standby.has_seen(need):
                unfit = "token_ahead"
            else:
                fit.append(replica)
                continue
            reason = min(reason, unfit, key=_RANK.__getitem__)
        return fit, reason

    async def read(self, need: Need, run: Callable[[AsyncEngine, Need], Awaitable[T]]) -> T:
        """`run(engine, need)` on the first fit standby that answers it, else on the primary; `run` checks `need`
        in its statement (raising Behind if the snapshot lacks it) when given a standby and a non-empty need, and is
        given an empty need on the primary, which has everything."""
        fit, reason = self.fit(need)
        for replica in fit:
            try:
                result = await run(replica.engine, need)
            except Behind:
                reason = min(reason, "token_ahead", key=_RANK.__getitem__)
                if self.retried is not None:
                    self.retried(replica.standby.name, "behind")
                continue
            except _DATABASE_ERRORS as exc:
                failed = _failure(exc)
                if failed == "host_down":
                    replica.standby.mark_down()
                reason = min(reason, failed, key=_RANK.__getitem__)
                if self.retried is not None:
                    self.retried(replica.standby.name, failed)
                logger.debug(
                    "read on %s failed (%s: %s); trying elsewhere", replica.standby.name, type(exc).__name__, exc
                )
                continue
            if self.count is not None:
                self.count("replica", "fit")
            return result
        result = await run(self.primary, Need())
        if self.count is not None:
            self.count("primary", reason)
        return result


def _failure(exc: BaseException) -> Literal["conflict", "host_down", "busy"]:
    """What a standby's failed read says about it: a conflict with recovery (it is fine, this query was in the
    way), a full pool (busy, not down), or anything else (down until measured again)."""
    if isinstance(exc, sa_exc.TimeoutError):
        return "busy"
    original = exc.orig if isinstance(exc, sa_exc.DBAPIError | sa_exc.EmulatedDBAPIException) else exc
    sqlstate = getattr(original, "sqlstate", None) or getattr(getattr(original, "__cause__", None), "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith("40"):
        return "conflict"
    return "host_down"


class SessionReads:
    """The ORM reads of one request (accounts, import jobs), on a fit standby or the primary: `run(read)` gives
    `read` a session of its own there, and runs it again elsewhere if that host fails it.

    With a `need`, the session's transaction is REPEATABLE READ and its first statement checks that its snapshot
    has what the read must see (one round trip more, only then; the rest of the read sees that snapshot)."""

    def __init__(self, router: ReadRouter, need: Need) -> None:
        self.router = router
        self.need = need

    async def run(self, read: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async def attempt(engine: AsyncEngine, need: Need) -> T:
            async with AsyncSession(engine, expire_on_commit=False, autoflush=False) as session:
                if need:
                    await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                    if not (await session.execute(GUARD, need.guard_params())).scalar_one():
                        raise Behind()
                return await read(session)

        return await self.router.read(self.need, attempt)
