"""Waiting on something else while holding a connection in a transaction, and stopping as soon as that connection
is gone.

A streamed upload holds its connection, in its transaction, while it waits for the next piece of its body. When
PostgreSQL ends that session meanwhile (`idle_in_transaction_session_timeout`, an operator's
`pg_terminate_backend`, a restart), nothing would notice until the next statement, which comes only with the next
piece: the request would keep a dead connection, and its slot in the pool, for as long as its client takes.
`until_lost` stops the wait the moment asyncpg sees the connection close, so the request fails then (503, as a
lost connection does) and its slot is freed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")
LOST = "the database connection was lost while the request body was arriving; nothing was written"


async def until_lost(driver: asyncpg.Connection, source: AsyncIterable[T]) -> AsyncGenerator[T, None]:
    """The items of `source`, as long as `driver` stays open; asyncpg's ConnectionDoesNotExistError as soon as it
    closes while an item is awaited (the wait is cancelled). Close it (`contextlib.aclosing`) when done with it
    early: until then it listens on the connection."""
    lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def closed(_: object) -> None:
        if not lost.done():
            lost.set_result(None)

    driver.add_termination_listener(closed)
    items = aiter(source)
    try:
        while not driver.is_closed():
            waiting: asyncio.Future[T] = asyncio.ensure_future(anext(items))
            either: list[asyncio.Future[Any]] = [waiting, lost]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                await asyncio.wait([waiting])
                if not waiting.cancelled():
                    waiting.exception()  # whatever the wait ended with, the lost connection is the answer
                break
            try:
                item = waiting.result()
            except StopAsyncIteration:
                return
            yield item
        raise asyncpg.ConnectionDoesNotExistError(LOST)
    finally:
        driver.remove_termination_listener(closed)
        lost.cancel()
