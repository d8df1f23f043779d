"""What the monitoring manifests and the dashboard may refer to: the series a running app exposes at /metrics,
and the series and labels each PromQL expression selects."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import promql_parser
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.observability.instruments import WorkerMetrics

# Labels Prometheus adds to every scraped series (the PodMonitor's target labels), not the app.
TARGET_LABELS = frozenset({"namespace", "pod", "container", "endpoint", "instance", "job"})
# Series of kube-state-metrics the alerts use, with their labels.
KUBE_STATE_METRICS = {"kube_pod_status_ready": frozenset({"namespace", "pod", "uid", "condition"})}
# Grafana's variables, as the dashboard's queries use them, replaced by values PromQL can parse.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": "devdir"}

SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
}


async def exposed(client: httpx.AsyncClient) -> dict[str, frozenset[str]]:
    """Every series name the app's /metrics serves, with the labels of its samples (and the target's labels).
    One request first, so that the request counters have samples, and so label names, of their own."""
    assert (await client.get("/api/developers")).status_code == 200
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return series_of(response.text)


def worker_exposed() -> dict[str, frozenset[str]]:
    """Every series name a worker process serves on its /metrics (service.imports.health), with its labels."""
    metrics = WorkerMetrics()
    metrics.watch(SimpleNamespace(ready=True))
    return series_of(generate_latest(metrics.registry).decode())


def series_of(text: str) -> dict[str, frozenset[str]]:
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in SAMPLE_SUFFIXES.get(family.type, ()):  # a family without samples yet still names its series
            names.setdefault(family.name + suffix, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels | TARGET_LABELS) for name, labels in names.items()}


def parse(expr: str) -> promql_parser.Expr:
    """A Prometheus rule's or a Grafana panel's query, parsed (ValueError if it is not PromQL)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """Each series selector of a query: the metric name and the matchers' values by label."""
    found: list[tuple[str, dict[str, str]]] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            found.append((node.name, {m.name: m.value for m in node.matchers.matchers}))

    promql_parser.walk(parse(expr), visit)
    return found


def unknown(expr: str, series: dict[str, frozenset[str]]) -> list[str]:
    """What a query selects that is not in `series` (a metric name, or a label the metric does not carry)."""
    problems = []
    for name, matchers in selectors(expr):
        if name not in series:
            problems.append(f"metric {name}")
        else:
            problems += [f"label {name}{{{label}}}" for label in matchers if label not in series[name]]
    return problems
