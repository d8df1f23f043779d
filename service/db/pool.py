"""The connection pool: SQLAlchemy's asyncio queue pool, with a checkout that does not wait when it need not.

SQLAlchemy's AsyncAdaptedQueuePool, once all of its connections exist (always, with DB_MAX_OVERFLOW=0), takes
every connection from its queue with a blocking `get` under `asyncio.wait_for`, which creates a task and a timer
even when a connection is sitting right there. That cost about 10 µs per checkout, on every request. This pool
takes an idle connection at once when there is one and falls back to SQLAlchemy's own path, with its timeout
(DB_POOL_TIMEOUT) and overflow accounting, only when there is none. Who gets a connection when several wait is
unchanged: asyncio's queue already hands an idle connection to whoever asks first. Only the slow path is timed,
for the pool's wait histogram.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util import queue


class ReadyFirstPool(AsyncAdaptedQueuePool):
    # Told how long each checkout that found no idle connection took (service.system.metrics), if set.
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
