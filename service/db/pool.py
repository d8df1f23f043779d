"""The connection pool: SQLAlchemy's asyncio queue pool, with a checkout that does not wait when it need not.

SQLAlchemy's AsyncAdaptedQueuePool, once all of its connections exist (always, with DB_MAX_OVERFLOW=0), takes
every connection from its queue with a blocking `get` under `asyncio.wait_for`, which creates a task and a timer
even when a connection is sitting right there. That cost about 10 µs per checkout, on every request. This pool
takes an idle connection at once when there is one and falls back to SQLAlchemy's own path, with its timeout
(DB_POOL_TIMEOUT) and overflow accounting, only when there is none. Who gets a connection when several wait is
unchanged: asyncio's queue already hands an idle connection to whoever asks first.
"""

from __future__ import annotations

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util import queue


class ReadyFirstPool(AsyncAdaptedQueuePool):
    def _do_get(self) -> ConnectionPoolEntry:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return super()._do_get()
