"""Statements that commit one by one, on a pooled connection (a worker's status and progress updates, which must be
visible while its import transaction is still open; the scheduler's periodic work).

Each statement runs in a transaction of its own rather than on a connection in AUTOCOMMIT mode: behind a
transaction-mode pooler the connection's statement_timeout and idle_in_transaction_session_timeout ride on each
BEGIN as SET LOCAL (service.db.pooler), so a statement outside a transaction would run with neither. BEGIN and
COMMIT cost two round trips per statement, on paths that run a few statements a second at most.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
from sqlalchemy import CursorResult, Executable
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util.typing import TupleAny, Unpack

Parameters = dict[str, Any] | None


class EachCommits:
    """A pooled connection whose every statement commits on its own."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def execute(self, statement: Executable, parameters: Parameters = None) -> CursorResult[Unpack[TupleAny]]:
        async with self._connection.begin():
            return await self._connection.execute(statement, parameters)

    async def scalar(self, statement: Executable, parameters: Parameters = None) -> Any:
        return (await self.execute(statement, parameters)).scalar()

    async def invalidate(self) -> None:
        """Never pool this connection again (a statement on it was cut short: its protocol state is unknown)."""
        await self._connection.invalidate()

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[asyncpg.Connection]:
        """The asyncpg connection, inside a transaction committed when the block ends.

        asyncpg's own transaction: SQLAlchemy's `begin()` sends BEGIN only with its first statement, and the
        driver's statements are not SQLAlchemy's: they would run outside any transaction (tests/db/test_pooler_guard).
        """
        raw = await self._connection.get_raw_connection()
        driver = cast(asyncpg.Connection, raw.driver_connection)
        async with driver.transaction(isolation="read_committed"):
            yield driver


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[EachCommits]:
    async with engine.connect() as connection:
        yield EachCommits(connection)
