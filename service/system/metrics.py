"""`GET /metrics`, served by Litestar's Prometheus controller: the process's figures and the app's own
(service.observability.metrics), with the import jobs by status read once per scrape."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from litestar import Request, get
from litestar.plugins.prometheus import PrometheusController
from litestar.response import Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from service.observability.metrics import Metrics

# Litestar adds `; charset=utf-8` to a text/* media type itself: given prometheus_client's whole Content-Type, the
# answer had the parameter twice.
MEDIA_TYPE = "; ".join(part for part in CONTENT_TYPE_LATEST.split("; ") if not part.startswith("charset="))


class MetricsController(PrometheusController):
    """Prometheus text format: the process's figures (prometheus_client's registry) and this app's own."""

    path = "/metrics"
    include_in_schema = False
    # Unauthenticated, like the probes: Prometheus scrapes it inside the cluster (docs/operations.md, Deployment).
    opt = {"exclude_from_auth": True}

    @get()
    async def get(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        metrics: Metrics = request.app.state.metrics
        body = generate_latest(REGISTRY) + generate_latest(metrics.registry)
        if (jobs := await metrics.jobs()) is not None:
            snapshot = CollectorRegistry()
            snapshot.register(_Snapshot(jobs))
            body += generate_latest(snapshot)
        return Response(body, media_type=MEDIA_TYPE)


class _Snapshot(Collector):
    """Metric families read once for one scrape, in the shape generate_latest takes."""

    def __init__(self, *families: Metric) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families
