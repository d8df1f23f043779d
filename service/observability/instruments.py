"""Metrics counted where the work happens, by services that know nothing of HTTP: bulk writes and import jobs.

Plain prometheus_client objects in a registry the caller owns: the API's (service.observability.metrics), or a worker
process's own, which its probe server exposes (service.imports.health). Each is touched once per bulk request or
per job, never per row or per read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sized
from typing import Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.db.models import ON_CONFLICT

PREFIX = "devdir"
# Seconds, from a small import's tens of milliseconds to a large background import's minutes.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
JOB_OUTCOMES = ("succeeded", "failed", "cancelled", "retried")


class BulkMetrics:
    """Rows written by the bulk routes and by background imports, and how long imports take."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter(
            f"{PREFIX}_bulk_rows",
            "Rows of committed bulk writes: operation=import (every row of the body, created, updated or skipped, "
            "by on_conflict), update (rows a batch update changed), delete (rows a bulk delete removed)",
            ["operation", "on_conflict"],
            registry=registry,
        )
        for mode in ON_CONFLICT:
            self.rows.labels("import", mode)
        self.rows.labels("update", "")
        self.rows.labels("delete", "")
        self.import_duration = Histogram(
            f"{PREFIX}_bulk_import_duration_seconds",
            "Seconds from an import's first row to its commit, by on_conflict",
            ["on_conflict"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        for mode in ON_CONFLICT:
            self.import_duration.labels(mode)

    def imported(self, on_conflict: str, rows: int, started: float) -> None:
        """An import of `rows` rows, begun at monotonic time `started`, has committed."""
        self.rows.labels("import", on_conflict).inc(rows)
        self.import_duration.labels(on_conflict).observe(time.monotonic() - started)

    def changed(self, operation: str, rows: int) -> None:
        """A batch update or bulk delete of `rows` rows has committed."""
        self.rows.labels(operation, "").inc(rows)


class JobMetrics:
    """How long the import jobs a worker ran took, by outcome."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            f"{PREFIX}_import_job_duration_seconds",
            "Seconds from a job's start by a worker to its end, by outcome (succeeded, failed, cancelled, or "
            "retried: given back to the queue after an error or a shutdown)",
            ["outcome"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        for outcome in JOB_OUTCOMES:
            self.duration.labels(outcome)

    def finished(self, outcome: str, started: float) -> None:
        self.duration.labels(outcome).observe(time.monotonic() - started)


class WorkerMetrics:
    """An import worker's metrics: its jobs, the rows it imported, whether its queue connection is up.

    A worker of its own process keeps them in a registry of its own; one inside the API process (WORKER_IN_PROCESS)
    is given the app's registry and bulk counters, so the API's /metrics shows them once.
    """

    def __init__(self, registry: CollectorRegistry | None = None, bulk: BulkMetrics | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.bulk = bulk if bulk is not None else BulkMetrics(self.registry)
        self.jobs = JobMetrics(self.registry)

    def watch(self, ready: ReadyProbe) -> None:
        self.registry.register(_WorkerState(ready))


@runtime_checkable  # the readiness probe's dependency, which Litestar checks with isinstance
class FeedProbe(Protocol):
    """What the metrics and the readiness probe read of the change feed (service.developers.events.feed.Feed),
    without importing the feed: its state, its subscribers, the events it delivered, and a hook for its lag."""

    lag_observer: Callable[[float], None] | None

    @property
    def state(self) -> str: ...

    @property
    def subscriptions(self) -> Sized: ...

    @property
    def delivered(self) -> int: ...


class ReadyProbe(Protocol):
    """Anything with a `ready` attribute: the worker, seen by its metrics without an import cycle."""

    @property
    def ready(self) -> bool: ...


class _WorkerState(Collector):
    def __init__(self, worker: ReadyProbe) -> None:
        self.worker = worker

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            f"{PREFIX}_import_worker_ready",
            "1 while the import worker's queue connection is up and it takes jobs",
            value=1 if self.worker.ready else 0,
        )
