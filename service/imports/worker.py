"""The import worker: takes queued imports and runs each exactly once, recording how it ended whichever
connection is lost on the way. What differs between the servers is its queue loop, chosen once as it is built:
on PostgreSQL pgqueuer (service.imports.pgqueuer_loop, with service.imports.runner), described below; on MariaDB
import_queue, polled, each job held by its entry's row lock for the whole import (service.imports.mariadb).
The lifecycle around it is the same on both: readiness, reconnecting with backoff, metrics, SIGTERM.

Connections. The queue has one dedicated asyncpg connection (pgqueuer's dequeue, LISTEN, heartbeats, and the
scheduler's polls). Imports run on the worker's own small SQLAlchemy pool (WORKER_POOL_SIZE), never on the API's
request pool: an import holds two of its connections, its transaction and an autocommit one for status and
progress, which must be visible while the transaction is still open; its outcome is written on a fresh one.

pgqueuer's asyncpg driver does not reconnect: when the queue connection is lost (terminated, restart, failover)
the managers stop and the worker connects again with backoff (0.1 s doubling to 5 s). An import still running
then finishes on its own connections; its queue entry, no longer heartbeating, is picked again later and skipped
as finished.

A worker that dies (SIGKILL, a lost node) stops heartbeating; WORKER_HEARTBEAT_SECONDS after its last heartbeat
another worker's dequeue picks the job again (pgqueuer), and its transaction never committed, so nothing of it is
in the table.

Polling. A worker sleeps until a NOTIFY wakes it (an entry inserted, deleted or retried: service.imports.queue)
or until pgqueuer's `dequeue_timeout`, 30 s by default. Two things become due with no NOTIFY: a retry's delay
ends, and a dead worker's entry goes stale. So a worker dequeues at least every POLL: a retry runs at its delay
(pgqueuer sleeps just until a retry due within the poll), a dead worker's job is taken again within
WORKER_HEARTBEAT_SECONDS + POLL of its last heartbeat, and a queued job whose NOTIFY was missed waits at most POLL
on an idle worker. An idle poll is four short statements on the queue connection (the dequeue, and pgqueuer's
checks for eligible work, the next retry's time and queued work), about 0.1% of a core for PostgreSQL and as
much for the worker (README, "Background imports").

SIGTERM (`stop()`): no new job is taken; a running import has WORKER_SHUTDOWN_SECONDS to end; past it, it is
rolled back, its attempt is given back, and it is queued again for another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import Literal, Protocol

import msgspec

from service.core.settings import Settings
from service.db.config import sqlalchemy_config
from service.imports.mariadb.loop import MariaDBLoop
from service.imports.pgqueuer_loop import PgQueuerLoop
from service.observability.instruments import WorkerMetrics

logger = logging.getLogger("service.imports")
# Seconds past WORKER_SHUTDOWN_SECONDS an in-process worker has to end before the app's shutdown cancels it: the
# give-back of a job and the queue's last writes.
SHUTDOWN_GRACE = 10.0

State = Literal["starting", "ready", "reconnecting", "stopping", "stopped"]
RECONNECT_MIN, RECONNECT_MAX = 0.1, 5.0  # queue reconnect backoff, seconds


class QueueLoop(Protocol):
    """What differs between the servers: how a worker takes, holds, retries and ends queue entries, in one
    `session()`, the life of one queue connection (it returns when the worker stops, raises when it is lost)."""

    async def session(self) -> None: ...


class Worker:
    def __init__(self, settings: Settings, metrics: WorkerMetrics | None = None) -> None:
        self.settings = settings
        # Its jobs' durations, the rows it imported, its readiness: `GET /metrics` on the probe port.
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        pool = msgspec.structs.replace(settings, db_pool_size=settings.worker_pool_size, db_max_overflow=0)
        self.db = sqlalchemy_config(pool, application_name="devdir worker")
        self.engine = self.db.get_engine()
        self.name = f"{socket.gethostname()}/{os.getpid()}"
        self.state: State = "starting"
        self.connections = 0  # queue connections opened so far
        self.queue_pid: int | None = None  # the queue connection's backend
        self._stopping = asyncio.Event()
        self._abort = asyncio.Event()  # set WORKER_SHUTDOWN_SECONDS after stop(): running imports give up
        self._task: asyncio.Task[None] | None = None
        # The queue of DATABASE_URL's server, chosen once: pgqueuer on PostgreSQL, import_queue on MariaDB.
        self.loop: QueueLoop = MariaDBLoop(self) if settings.backend == "mariadb" else PgQueuerLoop(self)
        self.metrics.watch(self)

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def stop(self) -> None:
        """Stop taking jobs, and end (see the module's docstring); safe to call from a signal handler."""
        if not self._stopping.is_set():
            logger.info("import worker %s: stopping", self.name)
            self.state = "stopping"
            self._stopping.set()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        """For an app's `lifespan`: a worker inside the API process (WORKER_IN_PROCESS)."""
        self._task = asyncio.create_task(self.run(), name="import-worker")
        try:
            yield
        finally:
            self.stop()
            await self._stopped(self._task, self.settings.worker_shutdown_seconds + SHUTDOWN_GRACE)

    async def _stopped(self, task: asyncio.Task[None], within: float) -> None:
        """Wait for `task` (run()) to end; past `within` seconds, cancel it, so that an app's shutdown never hangs on
        its worker (a queue task that never returns after its connection was lost). A job it held then waits for
        the heartbeat timeout, as after a crash."""
        done, _ = await asyncio.wait({task}, timeout=within)
        if not done:
            logger.warning("import worker %s: not stopped after %.0f s, cancelled", self.name, within)
            task.cancel()
            await asyncio.wait({task}, timeout=within)

    async def run(self) -> None:
        """Take and run jobs until `stop()`, reconnecting the queue whenever its connection is lost."""
        backoff = RECONNECT_MIN
        try:
            while not self._stopping.is_set():
                connected = self.connections
                try:
                    await self.loop.session()
                except Exception as exc:  # noqa: BLE001 (whatever ended the session, connect again)
                    if not self._stopping.is_set():
                        logger.warning(
                            "import worker %s: queue session ended (%s: %s)", self.name, type(exc).__name__, exc
                        )
                if self._stopping.is_set():
                    break
                self.state = "reconnecting"
                if self.connections > connected:
                    backoff = RECONNECT_MIN
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):
                        await self._stopping.wait()
                backoff = min(backoff * 2, RECONNECT_MAX)
        finally:
            self.state = "stopped"
            await self.engine.dispose()
