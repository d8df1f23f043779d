"""The app's metrics, which `GET /metrics` (service.system.metrics) serves: requests, the pool, the change feed,
bulk work, import jobs, and the hot standbys' replay lag (service.observability.replica_metrics).

Requests are counted and timed by service.web.requests, labelled with the route's path template
(`/api/developers/{developer_id}`), never the raw path, so ids in paths cannot grow the number of series. The
probes and /metrics itself are left out. Every figure of the app lives in a registry of its own
(`Metrics.registry`), so a process that builds several apps (the test suite) never registers a name twice, and
each app's /metrics shows its own requests, pool and feed; prometheus_client's process-wide registry adds the
process's CPU, memory and garbage collector figures.

The pool and change-feed figures are read from the live objects when /metrics is scraped: nothing is paid per
request. Counters that must be counted as things happen (a checkout that timed out, a database error answered
503) are incremented on those error paths only; the checkout wait is timed only when a checkout finds no idle
connection (service.db.pool). The change feed times each event's delivery once, as it fans it out; the bulk
routes count rows once per committed request (service.observability.instruments).

Import jobs by status are counted by one query per scrape (`SELECT status, count(*) FROM import_jobs GROUP BY
status`, over the jobs retention keeps), on an idle connection of the request pool: when none is idle (the pool
is busy, or the database is down and none is open) or the query fails or takes more than JOBS_QUERY_SECONDS,
that scrape leaves the jobs out rather than wait, fail, or take a connection a request is waiting for. A worker
inside this process (WORKER_IN_PROCESS) counts its jobs into this app's registry; a worker process serves its own
on its probe port (service.imports.health).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from service.db.isolation import WRITES
from service.db.models import IMPORT_STATUSES
from service.db.pool import ReadyFirstPool
from service.db.replicas import ReplicaLag
from service.db.routing import REASONS, RETRIES, Reason, Retry, Target
from service.observability.instruments import PREFIX, BulkMetrics, FeedProbe
from service.observability.replica_metrics import ReplicaState
from service.observability.request_metrics import LoopHistogram, RequestMetrics

logger = logging.getLogger("service.system.metrics")

# Database trouble answered 503, by kind: a statement that ran past statement_timeout, a deadlock or serialization
# failure, and a connection that could not be opened or was lost. Checkout timeouts have a counter of their own.
ErrorKind = Literal["statement_timeout", "conflict", "connection"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("statement_timeout", "conflict", "connection")
# Seconds a checkout waited when no connection was idle; DB_POOL_TIMEOUT (3 s by default) ends the wait.
WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds from an event's statement to its fan-out: a poll interval at most while listening, more while an older
# open transaction holds events back.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
JOBS_QUERY_SECONDS = 1.0
REPLAYED = tuple(operation for operation, declared in WRITES.items() if declared.replay)
_JOBS = text("SELECT status, count(*) FROM import_jobs GROUP BY status")


class Metrics:
    """One app's own metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = RequestMetrics()
        self.registry.register(self.requests)
        self.pool_timeouts = Counter(
            f"{PREFIX}_db_pool_timeouts",
            "Requests answered 503 because no pool connection came free within DB_POOL_TIMEOUT",
            registry=self.registry,
        )
        self.database_errors = Counter(
            f"{PREFIX}_db_errors",
            "Database errors answered 503, by kind (statement_timeout, conflict: deadlock or serialization, "
            "connection: could not connect or lost)",
            ["kind"],
            registry=self.registry,
        )
        for kind in ERROR_KINDS:
            self.database_errors.labels(kind)
        self.retries = Counter(
            f"{PREFIX}_db_retries",
            "Transactions replayed after a serialization failure or deadlock (service.db.isolation), by operation; "
            "one that fails on its last attempt is also counted in db_errors_total{kind=conflict}",
            ["operation"],
            registry=self.registry,
        )
        for operation in REPLAYED:
            self.retries.labels(operation)
        self.pool_wait = LoopHistogram(
            f"{PREFIX}_db_pool_wait_seconds",
            "Seconds a checkout waited for a connection, counted only when none was idle (a connection freed "
            "or opened for it, or the timeout)",
            WAIT_BUCKETS,
        )
        self.registry.register(self.pool_wait)
        self.feed_lag = Histogram(
            f"{PREFIX}_change_feed_lag_seconds",
            "Seconds from a change event's statement (the database's clock) to its fan-out to subscribers",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.bulk = BulkMetrics(self.registry)
        self.engine: AsyncEngine | None = None
        self.reads = Counter(
            f"{PREFIX}_db_reads",
            "Reads that may run on a hot standby (developers by id and pages, exports, the feed's replays, account and "
            "import-job reads), by where "
            "they ran: target=replica (reason=fit), or target=primary and why: token_ahead (no standby had yet the "
            "writes the read must see), lag (past DB_REPLICA_MAX_LAG_MS), host_down, conflict (cancelled by "
            "recovery), busy (its pool was full), no_replica (DATABASE_REPLICA_URLS is empty)",
            ["target", "reason"],
            registry=self.registry,
        )
        self._reads = {("replica", "fit"): self.reads.labels("replica", "fit")}
        for reason in REASONS:
            if reason != "fit":
                self._reads["primary", reason] = self.reads.labels("primary", reason)

    def count_read(self, target: Target, reason: Reason) -> None:
        self._reads[target, reason].inc()

    def watch_retries(self, replicas: Iterable[str]) -> None:
        """Count the reads sent to each of these standbys (by name) that had to run again elsewhere."""
        self.replica_retries = Counter(
            f"{PREFIX}_db_replica_retries",
            "Reads sent to this hot standby that ran again on another host (finally the primary), by why: behind "
            "(the read's own statement found its snapshot without a write the read must see), conflict (cancelled "
            "by recovery), host_down, busy (its pool was full)",
            ["replica", "reason"],
            registry=self.registry,
        )
        for replica in replicas:
            for reason in RETRIES:
                self.replica_retries.labels(replica, reason)

    def count_retry(self, replica: str, reason: Retry) -> None:
        self.replica_retries.labels(replica, reason).inc()

    def retried(self, operation: str) -> None:
        self.retries.labels(operation).inc()

    def watch(self, engine: AsyncEngine, feed: FeedProbe) -> None:
        """Report `engine`'s pool and `feed` as they are at each scrape, and time waits for the pool and the
        feed's deliveries."""
        pool = engine.sync_engine.pool
        if isinstance(pool, ReadyFirstPool):
            pool.wait_observer = self.pool_wait.observe
        feed.lag_observer = self.feed_lag.observe
        self.engine = engine
        self.registry.register(_LiveState(engine, feed))

    def watch_replicas(self, monitor: ReplicaLag) -> None:
        """Report each standby's replay lag and whether it answers, as the monitor last measured them."""
        self.registry.register(ReplicaState(monitor))

    async def jobs(self) -> GaugeMetricFamily | None:
        """Import jobs by status, or None when they cannot be counted now without waiting (see the module)."""
        engine = self.engine
        if engine is None:
            return None
        pool = engine.sync_engine.pool
        if not isinstance(pool, QueuePool) or pool.checkedin() == 0:
            return None
        try:
            async with asyncio.timeout(JOBS_QUERY_SECONDS), engine.connect() as connection:
                counts: dict[str, int] = {status: count for status, count in await connection.execute(_JOBS)}
        except Exception as exc:  # noqa: BLE001 (a scrape never fails for want of the jobs)
            logger.debug("metrics: import jobs not counted (%s: %s)", type(exc).__name__, exc)
            return None
        family = GaugeMetricFamily(f"{PREFIX}_import_jobs", "Import jobs by status", labels=["status"])
        for status in IMPORT_STATUSES:
            family.add_metric([status], counts.get(status, 0))
        return family


class _LiveState(Collector):
    def __init__(self, engine: AsyncEngine, feed: FeedProbe) -> None:
        self.engine = engine
        self.feed = feed

    def collect(self) -> Iterable[Metric]:
        pool = self.engine.sync_engine.pool  # read each time: dispose() replaces the pool
        if isinstance(pool, QueuePool):
            checked_out = pool.checkedout()
            yield _gauge("db_pool_size", "Connections the pool keeps (DB_POOL_SIZE)", pool.size())
            yield _gauge("db_pool_connections", "Connections open in the pool", pool.checkedin() + checked_out)
            yield _gauge("db_pool_checked_out", "Connections in use by requests", checked_out)
            yield _gauge(
                "db_pool_overflow",
                "Overflow connections open beyond DB_POOL_SIZE (DB_MAX_OVERFLOW caps them)",
                max(0, pool.overflow()),
            )
        feed = self.feed
        yield _gauge(
            "change_feed_listening",
            "1 while the change feed's LISTEN connection is up; 0 while it polls and reconnects",
            1 if feed.state == "listening" else 0,
        )
        yield _gauge("change_feed_subscribers", "Change-feed subscribers (SSE and WebSocket)", len(feed.subscriptions))
        delivered = CounterMetricFamily(
            f"{PREFIX}_change_feed_events_delivered", "Change events fanned out to subscribers, each counted once"
        )
        delivered.add_metric([], feed.delivered)
        yield delivered


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=value)
