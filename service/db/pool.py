"""The connection pool: SQLAlchemy's asyncio queue pool, with a checkout that does not wait when it need not, and
connections handed to waiting requests in the order they came.

An idle connection is taken at once, without the task and timer of SQLAlchemy's blocking `get`; only when none is
idle does the checkout take SQLAlchemy's own path, with its timeout (DB_POOL_TIMEOUT) and overflow accounting,
and only that path is timed, for the pool's wait histogram. A connection given back while requests wait goes to
the one that has waited longest (FairQueue), never to a newcomer. Both override SQLAlchemy's private pool API
(`_do_get`, `_queue_class`, `_pool`), so pyproject.toml bounds SQLAlchemy's version and
tests/db/test_private_apis.py checks that shape. What each cost before:
docs/decisions/0003-pool-checkout-and-fair-queue.md.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util import queue
from sqlalchemy.util.concurrency import await_


class FairQueue(queue.AsyncAdaptedQueue[ConnectionPoolEntry]):
    """The pool's queue, first come, first served: a connection given back while requests wait goes straight to the
    one that has waited longest, so it is never in the queue for a newcomer to take."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        self._waiters: deque[asyncio.Future[ConnectionPoolEntry]] = deque()

    def put_nowait(self, item: ConnectionPoolEntry) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # one that gave up (its timeout) is skipped
                waiter.set_result(item)
                return
        super().put_nowait(item)

    def get(self, block: bool = True, timeout: float | None = None) -> ConnectionPoolEntry:
        try:
            return self.get_nowait()  # an idle connection, which no one is waiting for (put_nowait)
        except queue.Empty:
            if not block:
                raise
        return await_(self._wait(within=timeout))

    async def _wait(self, *, within: float | None) -> ConnectionPoolEntry:
        waiter: asyncio.Future[ConnectionPoolEntry] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(within):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # Handed a connection just as the timeout (or a cancellation) ended the wait: the next in line gets it.
                self.put_nowait(waiter.result())
            else:
                waiter.cancel()
            if isinstance(exc, TimeoutError):
                raise queue.Empty from exc  # SQLAlchemy's pool then raises its own TimeoutError (503)
            raise


class ReadyFirstPool(AsyncAdaptedQueuePool):
    _queue_class = FairQueue
    # Told how long each checkout that found no idle connection took (service.observability.metrics), if set.
    wait_observer: Callable[[float], None] | None = None

    def _do_get(self) -> ConnectionPoolEntry:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        observe = self.wait_observer
        if observe is None:
            return super()._do_get()
        started = time.perf_counter()
        try:
            return super()._do_get()
        finally:
            observe(time.perf_counter() - started)
