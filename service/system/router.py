"""The operational routes: the probes, and `GET /metrics` when metrics are on (METRICS_ENABLED)."""

from __future__ import annotations

from litestar import Router

from service.observability.metrics import Metrics
from service.system.health import HealthController
from service.system.metrics import MetricsController


def router(metrics: Metrics | None) -> Router:
    return Router("/", route_handlers=[HealthController, *([MetricsController] if metrics is not None else [])])
