"""The change feed's outbox on PostgreSQL: a connection of the feed's own LISTENs on `developer_events`.

The listener is a dedicated asyncpg connection, outside the request pool (on DATABASE_DIRECT_URL: LISTEN needs a
session, never a transaction-mode pooler). Each statement that writes events NOTIFYs, and PostgreSQL delivers one
notification per transaction at commit: it only wakes the feed, which reads the events from the outbox
(service.developers.events.store) after its cursor, so a lost notification delays an event and never loses it.
The feed also reads every EVENTS_POLL_SECONDS, and every PENDING_POLL_SECONDS while committed events are held back
by an older open transaction.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from service.core.settings import Settings
from service.db.config import plain_url
from service.db.consistency import Need
from service.developers.events import store
from service.developers.events.cursor import Cursor
from service.developers.events.stored import Audience, StoredEvent

logger = logging.getLogger("service.developers.events")

CHANNEL = "developer_events"
APPLICATION_NAME = "devdir change feed"
PENDING_POLL_SECONDS = 0.05  # while committed events wait for an older transaction to end


class PostgresReads:
    """service.developers.events.store on one asyncpg connection."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def read(self, after: Cursor, limit: int) -> list[StoredEvent]:
        return await store.read(self.connection, after, limit)

    async def pending(self, after: Cursor) -> bool:
        return await store.pending(self.connection, after)

    async def latest(self) -> Cursor:
        return await store.latest(self.connection)

    async def horizon(self) -> Cursor:
        return await store.horizon(self.connection)

    async def read_between(
        self, after: Cursor, upto: Cursor, audience: Audience, limit: int, need: Need
    ) -> list[StoredEvent]:
        return await store.read_between(self.connection, after, upto, audience, limit, need)

    async def count_between(self, after: Cursor, upto: Cursor, audience: Audience, bound: int, need: Need) -> int:
        return await store.count_between(self.connection, after, upto, audience, bound, need)


class PostgresOutbox:
    errors: tuple[type[BaseException], ...] = (
        OSError,
        TimeoutError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        sa_exc.SQLAlchemyError,  # from the request pool, while reading through it
    )

    def __init__(self, settings: Settings) -> None:
        self.dsn = plain_url(settings.direct_url)  # LISTEN needs a session: never a transaction-mode pooler
        self.connect_timeout = settings.db_connect_timeout
        self.poll_seconds = settings.events_poll_seconds
        self._listener: asyncpg.Connection | None = None
        self._wake: Callable[[], None] | None = None

    def connected(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def connect(self, wake: Callable[[], None]) -> None:
        connection = await asyncpg.connect(
            self.dsn, timeout=self.connect_timeout, server_settings={"application_name": APPLICATION_NAME}
        )
        try:
            await connection.add_listener(CHANNEL, self._notified)
        except BaseException:
            await connection.close()
            raise
        connection.add_termination_listener(self._terminated)
        self._listener, self._wake = connection, wake
        logger.info("change feed: listening on %s", CHANNEL)

    def _notified(self, *_: object) -> None:
        if self._wake is not None:
            self._wake()

    def _terminated(self, *_: object) -> None:
        self._notified()  # the feed reconnects at once

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.remove_termination_listener(self._terminated)
            # Closed at once: a query cancelled mid-flight (at shutdown) would hold a graceful close until its
            # timeout, and the server needs no goodbye from a connection that only listened and read.
            listener.terminate()

    def own(self) -> PostgresReads | None:
        return PostgresReads(self._listener) if self.connected() and self._listener is not None else None

    @contextlib.asynccontextmanager
    async def pooled(self, engine: AsyncEngine) -> AsyncIterator[PostgresReads]:
        # Through a Connection, not engine.raw_connection(): a failed connect then raises SQLAlchemy's
        # DBAPIError (an outage: 503 on the routes, a logged warning in the feed), not the dialect's bare error.
        async with engine.connect() as connection:
            pooled = await connection.get_raw_connection()
            yield PostgresReads(pooled.driver_connection)

    def wait_seconds(self, pending: bool, subscribed: bool) -> float:  # a NOTIFY wakes it
        return PENDING_POLL_SECONDS if pending else self.poll_seconds

    def follow_commits(self, engine: AsyncEngine, wake: Callable[[], None]) -> None:
        """Nothing to do: a commit that wrote events NOTIFYs the listener, this process's own as any other's."""
