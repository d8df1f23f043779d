"""Monitoring, checked offline: the prod overlay's PodMonitor and PrometheusRule (custom resources, so no schema
in kubernetes-validate: their structure is checked here), and the Grafana dashboard in deploy/grafana. Every query
must parse as PromQL and select only series a running app serves at /metrics (or kube-state-metrics')."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest

from service.core.settings import Settings
from service.system.metrics import MetricsController
from tests.deploy.manifests import documents, one, selects
from tests.deploy.monitoring import KUBE_STATE_METRICS, exposed, parse, selectors, unknown, worker_exposed

DASHBOARD = Path(__file__).parents[2] / "deploy/grafana/devdir-dashboard.json"
MONITORING = "monitoring.coreos.com/v1"
SEVERITIES = {"critical", "warning", "info"}

needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed (apt-get install kubectl)"
)


def rules() -> list[dict[str, Any]]:
    return [rule for group in one("prod", "PrometheusRule")["spec"]["groups"] for rule in group["rules"]]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found += panel.get("panels", [])
    return found


def network_policy_of(template: dict[str, Any]) -> dict[str, Any]:
    """The spec of the one prod NetworkPolicy that selects the pods of this pod template."""
    (policy,) = [
        p["spec"]
        for p in documents("prod")
        if p["kind"] == "NetworkPolicy" and selects(p["spec"]["podSelector"], template["metadata"]["labels"])
    ]
    return policy


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]


@needs_kubectl
def test_monitoring_is_in_the_prod_overlay_only() -> None:
    # The dev overlay targets a laptop cluster, which seldom runs the Prometheus operator: its CRDs would be missing.
    assert not [d for d in documents("dev") if d["apiVersion"] == MONITORING]
    kinds = sorted(d["kind"] for d in documents("prod") if d["apiVersion"] == MONITORING)
    assert kinds == ["PodMonitor", "PodMonitor", "PrometheusRule"]


@needs_kubectl
def test_pod_monitor_scrapes_each_api_pod_on_its_named_port() -> None:
    monitor = one("prod", "PodMonitor", "devdir-api")["spec"]
    api = one("prod", "Deployment", "devdir-api")["spec"]["template"]
    worker = one("prod", "Deployment", "devdir-worker")["spec"]["template"]
    assert selects(monitor["selector"], api["metadata"]["labels"])
    assert not selects(monitor["selector"], worker["metadata"]["labels"])  # the workers have their own
    assert "namespaceSelector" not in monitor  # the pods of the PodMonitor's own namespace
    (endpoint,) = monitor["podMetricsEndpoints"]
    (container,) = api["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert endpoint["port"] in ports
    assert endpoint["path"] == MetricsController.path == "/metrics"
    interval, timeout = (promql_parser.parse_duration(endpoint[key]) for key in ("interval", "scrapeTimeout"))
    assert timeout < interval
    # The NetworkPolicy of the API pods admits that port from a Prometheus pod in the `monitoring` namespace.
    prometheus = {"kubernetes.io/metadata.name": "monitoring"}
    policy = network_policy_of(api)
    admitted = [
        rule
        for rule in policy["ingress"]
        if any(port["port"] in (endpoint["port"], ports[endpoint["port"]]) for port in rule["ports"])
        and (
            "from" not in rule  # any source
            or any(
                "namespaceSelector" in peer
                and selects(peer["namespaceSelector"], prometheus)
                and "podSelector" not in peer
                for peer in rule["from"]
            )
        )
    ]
    assert admitted, policy["ingress"]


@needs_kubectl
def test_pod_monitor_scrapes_each_worker_on_its_health_port() -> None:
    monitor = one("prod", "PodMonitor", "devdir-worker")["spec"]
    api = one("prod", "Deployment", "devdir-api")["spec"]["template"]
    worker = one("prod", "Deployment", "devdir-worker")["spec"]["template"]
    assert selects(monitor["selector"], worker["metadata"]["labels"])
    assert not selects(monitor["selector"], api["metadata"]["labels"])
    (endpoint,) = monitor["podMetricsEndpoints"]
    (container,) = worker["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert endpoint == {"port": "health", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    assert ports["health"] == Settings().worker_health_port
    # The workers' NetworkPolicy admits that port from any source (the kubelet's probes and Prometheus alike).
    policy = network_policy_of(worker)
    assert [rule for rule in policy["ingress"] if "from" not in rule] == [
        {"ports": [{"protocol": "TCP", "port": ports["health"]}]}
    ]


@needs_kubectl
def test_every_alert_parses_and_is_annotated() -> None:
    alerts = rules()
    assert len({rule["alert"] for rule in alerts}) == len(alerts)
    for rule in alerts:
        where = rule["alert"]
        assert selectors(rule["expr"]), where
        if "for" in rule:
            assert promql_parser.parse_duration(rule["for"]).total_seconds() > 0, where
        assert rule["labels"]["severity"] in SEVERITIES, where
        assert rule["annotations"]["summary"].strip(), where
        assert rule["annotations"]["description"].strip(), where


@needs_kubectl
def test_alerts_cover_the_pool_errors_readiness_and_the_feed() -> None:
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for rule in rules():
        for name in dict(selectors(rule["expr"])):
            by_metric.setdefault(name, []).append(rule)
    (saturation,) = by_metric["devdir_db_pool_checked_out"]
    assert saturation in by_metric["devdir_db_pool_size"]
    assert saturation["for"] == "5m"
    assert "> 0.9" in saturation["expr"]
    (timeouts,) = by_metric["devdir_db_pool_timeouts_total"]
    assert "increase(" in timeouts["expr"]
    assert timeouts["expr"].endswith("> 0")
    (errors,) = by_metric["devdir_requests_total"]
    assert {tuple(m.items()) for n, m in selectors(errors["expr"])} == {(("status_code", "5.."),), ()}
    assert errors["expr"].strip().endswith("> 0.01")
    assert errors["for"] == "5m"
    (feed,) = by_metric["devdir_change_feed_listening"]
    assert feed["expr"] == "devdir_change_feed_listening == 0"
    assert feed["for"] == "2m"
    (lag,) = by_metric["devdir_change_feed_lag_seconds_bucket"]
    assert lag["expr"].startswith("histogram_quantile(0.99, sum by (namespace, pod, le) (rate(")
    assert lag["expr"].strip().endswith("> 5")
    assert lag["for"] == "10m"
    (worker,) = by_metric["devdir_import_worker_ready"]
    assert worker["expr"] == "devdir_import_worker_ready == 0"
    (failed,) = by_metric["devdir_import_job_duration_seconds_count"]
    assert dict(selectors(failed["expr"]))["devdir_import_job_duration_seconds_count"] == {"outcome": "failed"}
    # Readiness changes, from kube-state-metrics, of the API's pods (named <deployment>-<hash>-<suffix>) only.
    (flapping,) = by_metric["kube_pod_status_ready"]
    ((_, matchers),) = selectors(flapping["expr"])
    assert matchers["condition"] == "true"
    pods = re.compile(matchers["pod"])
    assert pods.fullmatch(f"{one('prod', 'Deployment', 'devdir-api')['metadata']['name']}-5d8f7c9b4-x2kqz")
    assert not pods.fullmatch(f"{one('prod', 'Deployment', 'devdir-worker')['metadata']['name']}-6c4b8-q7wzt")
    assert not pods.fullmatch("devdir-migrate-8k2lx")


@needs_kubectl
async def test_alerts_select_only_what_is_exposed(client: httpx.AsyncClient) -> None:
    series = await exposed(client) | worker_exposed() | KUBE_STATE_METRICS
    for rule in rules():
        assert unknown(rule["expr"], series) == [], rule["alert"]


def test_dashboard_is_grafana_json_on_a_prometheus_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert parse(variables["namespace"]["definition"].removeprefix("label_values(").split(",")[0])
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            assert selectors(target["expr"]), (panel["title"], target["expr"])


async def test_dashboard_selects_only_what_is_exposed(client: httpx.AsyncClient) -> None:
    series = await exposed(client)
    queries = dashboard_queries()
    for expr in queries:
        assert unknown(expr, series) == [], expr
    shown = {name for expr in queries for name, _ in selectors(expr)}
    app = {name for name in series if name.startswith("devdir_") and not name.endswith("_created")}
    # Every figure of the app but the in-progress gauge, the open connections, and the histograms' _count and
    # _sum where only the quantiles are shown.
    assert app - shown == {
        "devdir_requests_in_progress",
        "devdir_db_pool_connections",
        "devdir_request_duration_seconds_count",
        "devdir_request_duration_seconds_sum",
        "devdir_db_pool_wait_seconds_sum",
        "devdir_change_feed_lag_seconds_count",
        "devdir_change_feed_lag_seconds_sum",
        "devdir_bulk_import_duration_seconds_count",
        "devdir_bulk_import_duration_seconds_sum",
        "devdir_import_job_duration_seconds_count",
        "devdir_import_job_duration_seconds_sum",
    }
