"""The seam between the change feed and its server: how the feed reads the outbox and how it learns that it
should. The feed's fan-out, subscriptions and routes are shared (service.developers.events.feed); each server
brings an Outbox, chosen once, when the feed is built (`outbox_for`):

- PostgreSQL (service.developers.events.postgres): a connection of the feed's own LISTENs; a commit that wrote
  events NOTIFYs it, so subscribers get an event about as soon as it can be served. Events are ordered by the
  writer's transaction id (service.developers.events.store).
- MariaDB and MySQL (service.developers.events.mariadb): no LISTEN. The feed polls on a connection of its own:
  each round stamps the events committed since the last one in commit order (the sequencer), then reads the
  stamped ones (service.developers.events.mariadb_store). Across processes an event arrives within a poll interval.

Either way the feed also reads through the request pool while its own connection is down.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from service.core.settings import Settings
from service.db.consistency import Need
from service.developers.events.cursor import Cursor
from service.developers.events.mariadb import MariaDBOutbox
from service.developers.events.postgres import PostgresOutbox
from service.developers.events.stored import Audience, StoredEvent


class OutboxReads(Protocol):
    """The outbox, read on one connection (each method a round trip, or one short transaction)."""

    async def read(self, after: Cursor, limit: int) -> list[StoredEvent]:
        """Up to `limit` events after `after` that can be served now, in order."""
        ...

    async def pending(self, after: Cursor) -> bool:
        """Whether committed events after `after` are not servable yet: the feed reads again soon."""
        ...

    async def latest(self) -> Cursor:
        """The newest servable event's cursor (START if none): where a feed from now begins."""
        ...

    async def horizon(self) -> Cursor:
        """The newest event retention has deleted (START if none)."""
        ...

    async def read_between(
        self, after: Cursor, upto: Cursor, audience: Audience, limit: int, need: Need
    ) -> list[StoredEvent]:
        """Up to `limit` events in (after, upto] that `audience` is shown: a replay of served events."""
        ...

    async def count_between(self, after: Cursor, upto: Cursor, audience: Audience, bound: int, need: Need) -> int:
        """How many events in (after, upto] `audience` is shown, counted up to `bound`."""
        ...


class Outbox(Protocol):
    """The feed's own connection to the outbox, and how long the feed may wait before reading it again."""

    # What a lost connection or an unreachable server raises, on the feed's connection or a pooled one.
    errors: tuple[type[BaseException], ...]

    def connected(self) -> bool:
        """Whether the feed's own connection is up, as far as is known without a round trip."""
        ...

    async def connect(self, wake: Callable[[], None]) -> None:
        """Open the feed's own connection; `wake()` when events may be there to read, or the connection was lost."""
        ...

    async def close(self) -> None: ...

    def own(self) -> OutboxReads | None:
        """The outbox on the feed's own connection, while it is up."""
        ...

    def pooled(self, engine: AsyncEngine) -> AbstractAsyncContextManager[OutboxReads]:
        """The outbox on a connection borrowed from `engine`'s pool."""
        ...

    def wait_seconds(self, pending: bool, subscribed: bool) -> float:
        """How long the feed may sleep, unless woken, before it reads again."""
        ...

    def follow_commits(self, engine: AsyncEngine, wake: Callable[[], None]) -> None:
        """Have `wake()` called after this process's own commits on `engine`'s pool, where nothing else would."""
        ...


def outbox_for(settings: Settings) -> Outbox:
    """The server's Outbox: chosen here, once, from DATABASE_URL."""
    return MariaDBOutbox(settings) if settings.backend == "mariadb" else PostgresOutbox(settings)
