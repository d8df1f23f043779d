"""The change feed's outbox on MariaDB and MySQL 8: no LISTEN, so the feed polls, on a connection of its own.

Each round, one round trip asks for the last stamp and whether any event waits for one; when one does, the
sequencer stamps the committed ones (service.developers.events.mariadb_store says why that order cannot skip an
event), and when the last stamp is past the feed's cursor, the feed reads what follows. An idle round is that one
round trip. The feed polls every LIVE_POLL_SECONDS while it has subscribers, every EVENTS_POLL_SECONDS while it has
none (its cursor, where a subscriber from now starts, moves on all the same), and at once again while a round
stamped a full page. Every process's feed stamps: whichever runs first stamps for all, so an event committed
through one process reaches the subscribers of any other within one poll interval (plus the round itself). A
commit through this process's own pool wakes its feed at once (`follow_commits`).

The connection is asyncmy's, outside the request pool, with the pool's session settings (service.db.mariadb) and
READ COMMITTED (the sequencer takes no gap locks). While it is down the feed reads through the request pool and
reconnects (service.developers.events.feed).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import asyncmy
from asyncmy import errors as asyncmy_errors
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry

from service.core.settings import Settings
from service.db import mariadb
from service.db.consistency import Need
from service.developers.events import mariadb_store
from service.developers.events.cursor import Cursor
from service.developers.events.stored import Audience, StoredEvent

APPLICATION_NAME = "devdir change feed"
LIVE_POLL_SECONDS = 0.05  # while the process has subscribers: the latency of an event across processes
STAMP_PAGE = 1000  # events stamped per transaction, when not reading
_COMMITTED = "devdir.feed.committed"  # in a pooled connection's info: it committed since it was checked out
_READ_COMMITTED = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"


class MariaDBReads:
    """service.developers.events.mariadb_store on one asyncmy connection; reading stamps first."""

    def __init__(self, connection: asyncmy.Connection) -> None:
        self.connection = connection
        self.more = False  # the last round stamped a full page: more committed events may wait

    async def read(self, after: Cursor, limit: int) -> list[StoredEvent]:
        # 1 round trip when idle; + the sequencer's transaction when events wait; + the read when there are some.
        last = await self._stamp(limit)
        if last <= after[0]:  # every event has a stamp of its own: none is after the cursor
            return []
        return await mariadb_store.read(self.connection, after, limit)

    async def _stamp(self, limit: int) -> int:
        """Stamp up to `limit` committed events, if any wait; the last stamp."""
        last, unstamped = await mariadb_store.state(self.connection)
        if unstamped:
            last, stamped = await mariadb_store.stamp(self.connection, limit)
            self.more = stamped == limit
        return last

    async def pending(self, after: Cursor) -> bool:
        return self.more

    async def latest(self) -> Cursor:
        await self._stamp(STAMP_PAGE)  # what has committed by now is before the feed's start
        return await mariadb_store.latest(self.connection)

    async def horizon(self) -> Cursor:
        return await mariadb_store.horizon(self.connection)

    async def read_between(
        self,
        after: Cursor,
        upto: Cursor,
        audience: Audience,
        limit: int,
        need: Need,  # no standbys on MariaDB (Settings.check refuses them)
    ) -> list[StoredEvent]:
        return await mariadb_store.read_between(self.connection, after, upto, audience, limit)

    async def count_between(
        self,
        after: Cursor,
        upto: Cursor,
        audience: Audience,
        bound: int,
        need: Need,
    ) -> int:
        return await mariadb_store.count_between(self.connection, after, upto, audience, bound)


class MariaDBOutbox:
    errors: tuple[type[BaseException], ...] = (OSError, TimeoutError, asyncmy_errors.Error, sa_exc.SQLAlchemyError)

    def __init__(self, settings: Settings) -> None:
        url = make_url(mariadb.async_url(settings.direct_url))
        self.connect_args: dict[str, Any] = {
            "host": url.host or "127.0.0.1",
            "port": url.port or 3306,
            "user": url.username or "root",
            "password": url.password or "",
            "database": url.database or "",
            "autocommit": True,
            **mariadb.connect_args(settings, APPLICATION_NAME),
        }
        self.poll_seconds = settings.events_poll_seconds
        self._reads: MariaDBReads | None = None

    def connected(self) -> bool:
        return self._reads is not None and not mariadb.is_closed(self._reads.connection)

    async def connect(self, wake: Callable[[], None]) -> None:  # nothing wakes it: it polls
        connection = await asyncmy.connect(**self.connect_args)
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(_READ_COMMITTED)
        except BaseException:
            connection.close()
            raise
        self._reads = MariaDBReads(connection)

    async def close(self) -> None:
        reads, self._reads = self._reads, None
        if reads is not None:
            reads.connection.close()  # no goodbye needed: the connection only read and stamped

    @property
    def connection_id(self) -> int | None:
        """The server's id of the feed's connection (information_schema.processlist's ID), while it has one."""
        return None if self._reads is None else int(self._reads.connection.thread_id())

    def own(self) -> MariaDBReads | None:
        return self._reads if self.connected() else None

    @contextlib.asynccontextmanager
    async def pooled(self, engine: AsyncEngine) -> AsyncIterator[MariaDBReads]:
        async with engine.connect() as connection:
            pooled = await connection.get_raw_connection()
            yield MariaDBReads(cast(asyncmy.Connection, pooled.driver_connection))

    def wait_seconds(self, pending: bool, subscribed: bool) -> float:
        if pending:
            return 0.0
        return min(LIVE_POLL_SECONDS, self.poll_seconds) if subscribed else self.poll_seconds

    def follow_commits(self, engine: AsyncEngine, wake: Callable[[], None]) -> None:
        """Wake the feed when a connection of `engine`'s pool goes back to it after a COMMIT: this process's own
        writes arrive at once, without waiting for a poll (other processes' within one). Reads commit nothing
        (service.web.transaction), so they wake nothing; many commits before the feed runs wake it once."""

        def committed(connection: Connection) -> None:
            connection.info[_COMMITTED] = True

        def returned(_dbapi_connection: object, record: ConnectionPoolEntry) -> None:
            if record.info.pop(_COMMITTED, False):
                wake()

        event.listen(engine.sync_engine, "commit", committed)
        event.listen(engine.sync_engine.pool, "checkin", returned)
