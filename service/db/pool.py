"""The connection pool: SQLAlchemy's asyncio queue pool, with a checkout that does not wait when it need not, and
connections handed to waiting requests in the order they came, each wait costing one future and no timer.

An idle connection is taken at once, without the task and timer of SQLAlchemy's blocking `get`; only when none is
idle does the checkout take SQLAlchemy's own path, with its timeout (DB_POOL_TIMEOUT) and overflow accounting,
and only that path is timed, for the pool's wait histogram. A connection given back while requests wait goes to
the one that has waited longest (FairQueue), never to a newcomer. A waiter is a future in a line; its timeout is
not a timer of its own: every checkout of a pool waits for the same DB_POOL_TIMEOUT, so deadlines come in the
line's order, and one timer, set for the first waiter's deadline, ends every wait that has run out.
Both override SQLAlchemy's private pool API (`_do_get`, `_queue_class`, `_pool`), so pyproject.toml bounds
SQLAlchemy's version and tests/db/test_private_apis.py checks that shape. What each cost before:
docs/decisions/0003-pool-checkout-and-fair-queue.md and docs/decisions/0009-pool-waits-without-timers.md.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util import queue
from sqlalchemy.util.concurrency import await_

# A deadline this close is due: an event loop may run a timer up to its clock's resolution early.
_DUE = 0.001


class FairQueue(queue.AsyncAdaptedQueue[ConnectionPoolEntry]):
    """The pool's queue, first come, first served: a connection given back while requests wait goes straight to the
    one that has waited longest, so it is never in the queue for a newcomer to take."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        # (deadline on the loop's clock, the waiter's future), oldest first.
        self._waiters: deque[tuple[float, asyncio.Future[ConnectionPoolEntry]]] = deque()
        self._expiry: asyncio.TimerHandle | None = None  # the one timer, while a waiter has a deadline
        self._expiry_loop: asyncio.AbstractEventLoop | None = None

    def put_nowait(self, item: ConnectionPoolEntry) -> None:
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():  # one that gave up (cancelled, or timed out) is skipped
                waiter.set_result(item)
                return
        super().put_nowait(item)

    def get(self, block: bool = True, timeout: float | None = None) -> ConnectionPoolEntry:
        try:
            return self.get_nowait()  # an idle connection, which no one is waiting for (put_nowait)
        except queue.Empty:
            if not block:
                raise
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[ConnectionPoolEntry] = loop.create_future()
        self._waiters.append((math.inf if timeout is None else loop.time() + timeout, waiter))
        if self._expiry is None or self._expiry_loop is not loop:  # (a timer of a loop that has ended never runs)
            self._expire_in(loop)
        try:
            return await_(waiter)  # the request's task awaits the future itself: no task, no timer of its own
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection just as a cancellation ended the wait: the next in line gets it.
                self.put_nowait(waiter.result())
            else:
                waiter.cancel()
            raise

    def _expire_in(self, loop: asyncio.AbstractEventLoop) -> None:
        """Set the one timer for the first waiter still waiting, if it has a deadline."""
        while self._waiters and self._waiters[0][1].done():
            self._waiters.popleft()
        if self._waiters and (deadline := self._waiters[0][0]) < math.inf:
            self._expiry, self._expiry_loop = loop.call_at(deadline, self._expire, loop), loop

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """End the waits whose deadline has come: SQLAlchemy's pool turns Empty into its TimeoutError (503)."""
        self._expiry = None
        due = loop.time() + _DUE
        while self._waiters and self._waiters[0][0] <= due:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(queue.Empty())
        self._expire_in(loop)


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
