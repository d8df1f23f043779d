"""The request figures and the pool's checkout wait as Prometheus collectors of plain counts, observed on the event
loop's thread only (no lock), and turned into Prometheus' families only when /metrics is scraped. The request layer
(service.web.requests) and the pool observe them; service.observability.metrics registers them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from service.observability.instruments import PREFIX

# Seconds, for the request duration histogram: hot reads answer in about a millisecond, bulk imports in minutes.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def cumulative(bounds: tuple[float, ...], counts: Iterable[float]) -> list[tuple[str, float]]:
    """Per-bucket counts (the last one above every bound) as Prometheus' cumulative `le` buckets."""
    total, buckets = 0.0, []
    for bound, count in zip([*(str(bound) for bound in bounds), "+Inf"], counts, strict=True):
        total += count
        buckets.append((bound, total))
    return buckets


class LoopHistogram(Collector):
    """A histogram without labels, observed on the event loop's thread only: plain counts, no lock. The pool's
    checkout wait is observed on most requests of a busy pool; prometheus_client's Histogram takes a lock for its
    sum and another for the bucket on each observation. Exposed under `name` as the same Prometheus histogram."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self.name, self.documentation, self.buckets = name, documentation, buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.buckets, seconds)] += 1
        self.sum += seconds

    def collect(self) -> Iterable[Metric]:
        buckets = cumulative(self.buckets, self.counts)
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self.sum)


class RequestMetrics(Collector):
    """Requests by method, path template and status: a count, a duration histogram, and those in progress."""

    def __init__(self) -> None:
        # (method, path, status) -> [count, sum of seconds, then one count per bucket, the last one +Inf]
        self.series: dict[tuple[str, str, int], list[float]] = {}
        self.in_progress = 0

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        key = (method, path, status)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = [0.0] * (len(DURATION_BUCKETS) + 3)
        series[0] += 1
        series[1] += seconds
        series[2 + bisect_left(DURATION_BUCKETS, seconds)] += 1

    def collect(self) -> Iterable[Metric]:
        labels = ["method", "path", "status_code"]
        total = CounterMetricFamily(f"{PREFIX}_requests", "Requests answered, by route template", labels=labels)
        duration = HistogramMetricFamily(
            f"{PREFIX}_request_duration_seconds",
            "Seconds from a request's arrival to its answer's last byte, by route template",
            labels=labels,
        )
        for (method, path, status), series in sorted(self.series.items()):
            values = [method, path, str(status)]
            total.add_metric(values, series[0])
            duration.add_metric(values, cumulative(DURATION_BUCKETS, series[2:]), sum_value=series[1])
        yield total
        yield duration
        doc = "HTTP requests being served now, this scrape included"
        yield GaugeMetricFamily(f"{PREFIX}_requests_in_progress", doc, self.in_progress)
