"""`GET /metrics`: Litestar's Prometheus plugin for requests, plus this app's own collectors.

Requests are counted and timed by Litestar's PrometheusMiddleware, labelled with the route's path template
(`/api/developers/{developer_id}`), never the raw path, so ids in paths cannot grow the number of series. The
probes and /metrics itself are left out. The middleware keeps its metrics in prometheus_client's process-wide
registry; everything else here lives in a registry of the app's own (`Metrics.registry`), so a process that builds
several apps (the test suite) never registers a name twice, and each app's /metrics shows its own pool and feed.

The pool and change-feed figures are read from the live objects when /metrics is scraped: nothing is paid per
request. Counters that must be counted as things happen (a checkout that timed out, a database error answered
503) are incremented on those error paths only; the checkout wait is timed only when a checkout finds no idle
connection (service.db.pool).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from litestar import Request, get
from litestar.enums import ScopeType
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.response import Response
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from service.db.pool import ReadyFirstPool
from service.developers.events.feed import Feed

PREFIX = "devdir"
# Database trouble answered 503, by kind: a statement that ran past statement_timeout, a deadlock or serialization
# failure, and a connection that could not be opened or was lost. Checkout timeouts have a counter of their own.
ErrorKind = Literal["statement_timeout", "conflict", "connection"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("statement_timeout", "conflict", "connection")
# Seconds a checkout waited when no connection was idle; DB_POOL_TIMEOUT (3 s by default) ends the wait.
WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def prometheus_config() -> PrometheusConfig:
    return PrometheusConfig(
        app_name=PREFIX,
        prefix=PREFIX,
        group_path=True,  # the route's path template as the `path` label
        exclude=["^/metrics$", "^/health$", "^/ready$"],
        scopes={ScopeType.HTTP},  # a WebSocket is not a request with a status and a duration
    )


class Metrics:
    """One app's own metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
        self.pool_wait = Histogram(
            f"{PREFIX}_db_pool_wait_seconds",
            "Seconds a checkout waited for a connection, counted only when none was idle (a connection freed "
            "or opened for it, or the timeout)",
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )

    def watch(self, engine: AsyncEngine, feed: Feed) -> None:
        """Report `engine`'s pool and `feed` as they are at each scrape, and time waits for the pool."""
        pool = engine.sync_engine.pool
        if isinstance(pool, ReadyFirstPool):
            pool.wait_observer = self.pool_wait.observe
        self.registry.register(_LiveState(engine, feed))


class _LiveState(Collector):
    def __init__(self, engine: AsyncEngine, feed: Feed) -> None:
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


class MetricsController(PrometheusController):
    """Prometheus text format: Litestar's request metrics (process-wide) and this app's own registry."""

    path = "/metrics"
    include_in_schema = False
    # Unauthenticated, like the probes: Prometheus scrapes it inside the cluster (see the README, Deployment).
    opt = {"exclude_from_auth": True}

    @get(sync_to_thread=False)
    def get(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        metrics: Metrics = request.app.state.metrics
        body = generate_latest(REGISTRY) + generate_latest(metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
