"""The Kubernetes manifests, checked offline: each overlay renders, validates against the Kubernetes schemas, and
follows the rules a cluster operator expects (probes, resources, a locked-down security context, ...)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service.core.settings import Settings
from service.system.serving import BACKPRESSURE, SLOW_CLIENT_DEFAULTS
from tests.deploy.crds import KUBERNETES
from tests.deploy.manifests import K8S, documents, one, render, selects, setting

OVERLAYS = ("dev", "prod")
# No schema in kubernetes-validate: checked by the tests below, in test_pooler.py (the Pooler against its schema in
# tests/deploy/schemas) and in test_monitoring.py.
CRDS = {
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "Pooler"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed (apt-get install kubectl)"
)


def pod_specs(target: str) -> list[tuple[str, dict[str, Any]]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in documents(target) if d["kind"] in WORKLOADS]


def primary_env(container: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A container's env but for DATABASE_REPLICA_URLS, which the prod overlay gives the API alone (the workers and
    the migration only write)."""
    env = container.get("env")
    return None if env is None else [v for v in env if v["name"] != "DATABASE_REPLICA_URLS"]


def quantity(value: str | int) -> float:
    """A Kubernetes resource quantity in base units (cores, bytes): "250m", "1", "256Mi", "1Gi", "250M"."""
    text = str(value)
    for suffix, factor in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("k", 1e3), ("M", 1e6), ("G", 1e9)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_against_the_kubernetes_schemas(overlay: str, tmp_path: Path) -> None:
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(render(overlay))
    validate = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run(
        [str(validate), "--strict", "-k", KUBERNETES, str(rendered)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    kinds = {(d["apiVersion"], d["kind"]) for d in documents(overlay)}
    for _, kind in kinds - CRDS:
        assert f"passed for resource {kind.lower()}/" in output, (kind, output)
    for api_version, kind in kinds & CRDS:
        assert f"Couldn't find schema for kind {kind} with api version {api_version}" in output


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_locked_down_and_sized(overlay: str) -> None:
    for name, spec in pod_specs(overlay):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            where = (name, container["name"])
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), where
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1], where  # a tag is pinned
            assert not image.endswith(":latest"), where
            if spec.get("restartPolicy") != "OnFailure":  # long-running containers are probed
                assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(container), where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_rolls_out_and_stops_gracefully(overlay: str) -> None:
    deployment = one(overlay, "Deployment", "devdir-api")
    spec = deployment["spec"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    (api,) = pod["containers"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["startupProbe"]["httpGet"]["path"] == "/health"
    # /ready is 200 only at the migration head: the API takes traffic only once the migration Job has run.
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    config = one(overlay, "ConfigMap", "devdir-config")["data"]
    assert config["GRANIAN_WORKERS"] == "1"
    grace = int(config["GRANIAN_WORKERS_KILL_TIMEOUT"]) + api["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > grace
    assert {m["mountPath"] for m in api["volumeMounts"]} == {"/tmp"}  # the only writable path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migration_job_runs_the_migration_with_the_api_image(overlay: str) -> None:
    job = one(overlay, "Job", "devdir-migrate")["spec"]["template"]["spec"]
    api = one(overlay, "Deployment", "devdir-api")["spec"]["template"]["spec"]
    assert job["containers"][0]["args"] == ["database", "upgrade", "--no-prompt"]
    assert job["containers"][0]["image"] == api["containers"][0]["image"]
    assert job["containers"][0]["envFrom"] == api["containers"][0]["envFrom"]
    assert job["containers"][0].get("env") == primary_env(api["containers"][0])


def test_configmap_and_secret_carry_exactly_the_settings() -> None:
    config = set(one("base", "ConfigMap", "devdir-config")["data"])
    secret = set(one("base", "Secret", "devdir-secrets")["stringData"])
    settings = set(Settings.env_names())
    assert not config & secret
    assert (config | secret) - {name for name in config if name.startswith("GRANIAN_")} == settings
    assert secret == {
        "DATABASE_URL",
        "DATABASE_DIRECT_URL",
        "DATABASE_REPLICA_URLS",
        "SECRET_KEY",
        "DEVDIR_ADMIN_PASSWORD",
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_keeps_the_limits_of_devdir_run_for_slow_clients(overlay: str) -> None:
    """HTTP/1.1 only, the header timeout and the connections per worker are `devdir run`'s defaults (the image
    runs it): the ConfigMap may restate them, never weaken them (deploy/README.md, slow clients)."""
    config = one(overlay, "ConfigMap", "devdir-config")["data"]
    for name, value in SLOW_CLIENT_DEFAULTS.items():
        assert config.get(name, value) == value, name
    assert int(config.get("GRANIAN_BACKPRESSURE", BACKPRESSURE)) == BACKPRESSURE


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_and_service_account(overlay: str) -> None:
    policy = one(overlay, "NetworkPolicy", "devdir")["spec"]
    assert [port["port"] for rule in policy["ingress"] for port in rule["ports"]] == [8000]
    assert sorted({port["port"] for rule in policy["egress"] for port in rule["ports"]}) == [53, 5432]
    assert one(overlay, "ServiceAccount", "devdir")["automountServiceAccountToken"] is False
    assert one(overlay, "HorizontalPodAutoscaler")["apiVersion"] == "autoscaling/v2"
    assert one(overlay, "PodDisruptionBudget", "devdir-api")["spec"]["minAvailable"] == 1
    database_pods = [d for d in documents(overlay) if d["kind"] in {"StatefulSet", "Cluster"}]
    for database in database_pods:
        labels = (
            database["spec"]["template"]["metadata"]["labels"]
            if database["kind"] == "StatefulSet"
            else database["spec"]["inheritedMetadata"]["labels"]
        )
        assert labels["app.kubernetes.io/component"] == "database"  # what the egress rule lets the API reach


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_runs_the_api_image_with_its_settings(overlay: str) -> None:
    deployment = one(overlay, "Deployment", "devdir-worker")
    pod = deployment["spec"]["template"]["spec"]
    api = one(overlay, "Deployment", "devdir-api")["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    assert worker["args"] == ["workers", "run"]
    assert worker["image"] == api["containers"][0]["image"]
    assert worker["envFrom"] == api["containers"][0]["envFrom"]
    # prod: DATABASE_URL from the operator's secret, as the API's (whose reads alone have a standby URL besides)
    assert worker.get("env") == primary_env(api["containers"][0])
    # Two workers, so that the job of one that is killed is taken by the other; one is enough on a laptop.
    assert deployment["spec"]["replicas"] == (1 if overlay == "dev" else 2)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"], labels)
    assert not selects(one(overlay, "Deployment", "devdir-api")["spec"]["selector"], labels)
    # Nothing calls the worker: no Service, and no HPA, selects or targets it.
    for service in (d for d in documents(overlay) if d["kind"] == "Service"):
        assert not selects({"matchLabels": service["spec"]["selector"]}, labels), service["metadata"]["name"]
    assert one(overlay, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == "devdir-api"
    # The API pods read the same ConfigMap: they must not run a worker of their own besides.
    assert one(overlay, "ConfigMap", "devdir-config")["data"].get("WORKER_IN_PROCESS", "false") == "false"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_is_probed_on_its_named_health_port(overlay: str) -> None:
    (worker,) = one(overlay, "Deployment", "devdir-worker")["spec"]["template"]["spec"]["containers"]
    config = one(overlay, "ConfigMap", "devdir-config")["data"]
    assert worker["ports"] == [{"name": "health", "containerPort": setting(config, "WORKER_HEALTH_PORT")}]
    probes = {name: worker[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["startupProbe"] == {"path": "/health", "port": "health"}
    assert probes["livenessProbe"] == {"path": "/health", "port": "health"}
    assert probes["readinessProbe"] == {"path": "/ready", "port": "health"}  # the queue connection is up


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_stops_gracefully_and_rolls_out_without_a_gap(overlay: str) -> None:
    spec = one(overlay, "Deployment", "devdir-worker")["spec"]
    pod = spec["template"]["spec"]
    config = one(overlay, "ConfigMap", "devdir-config")["data"]
    # The running job gets WORKER_SHUTDOWN_SECONDS after SIGTERM, then is cancelled and rolled back: the kubelet's
    # SIGKILL must come well after that.
    assert pod["terminationGracePeriodSeconds"] >= setting(config, "WORKER_SHUTDOWN_SECONDS") + 10
    assert "lifecycle" not in pod["containers"][0]  # no Service, so no preStop wait for endpoints
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert selects(pod["topologySpreadConstraints"][0]["labelSelector"], spec["template"]["metadata"]["labels"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_is_sized_for_one_import(overlay: str) -> None:
    (worker,) = one(overlay, "Deployment", "devdir-worker")["spec"]["template"]["spec"]["containers"]
    requests, limits = worker["resources"]["requests"], worker["resources"]["limits"]
    assert quantity(requests["memory"]) >= 250e6  # the design's expected peak RSS of an import is under 250 MB
    assert quantity(limits["memory"]) >= 1.25 * quantity(requests["memory"])  # headroom before an OOM kill
    assert quantity(limits["memory"]) <= 512 * 2**20  # no more than the API gets
    assert 0 < quantity(requests["cpu"]) <= quantity(limits["cpu"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_is_locked_down_like_the_api(overlay: str) -> None:
    worker = one(overlay, "Deployment", "devdir-worker")["spec"]["template"]["spec"]
    api = one(overlay, "Deployment", "devdir-api")["spec"]["template"]["spec"]
    for key in ("securityContext", "serviceAccountName", "automountServiceAccountToken"):
        assert worker[key] == api[key], key
    # The same /tmp, which the API may have larger (prod spools exports there, test_replicas.py).
    (worker_tmp,), (api_tmp,) = worker["volumes"], api["volumes"]
    assert worker_tmp["name"] == api_tmp["name"]
    assert quantity(worker_tmp["emptyDir"]["sizeLimit"]) <= quantity(api_tmp["emptyDir"]["sizeLimit"])
    assert set(worker_tmp["emptyDir"]) == set(api_tmp["emptyDir"]) == {"sizeLimit"}  # on disk, never in memory
    for key in ("securityContext", "volumeMounts"):
        assert worker["containers"][0][key] == api["containers"][0][key], key


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_disruption_budget(overlay: str) -> None:
    labels = one(overlay, "Deployment", "devdir-worker")["spec"]["template"]["metadata"]["labels"]
    budget = one(overlay, "PodDisruptionBudget", "devdir-worker")["spec"]
    assert selects(budget["selector"], labels)
    # One worker at a time may be evicted; never blocks a drain, even with the dev overlay's single worker.
    assert budget == {"maxUnavailable": 1, "selector": budget["selector"]}
    assert not selects(one(overlay, "PodDisruptionBudget", "devdir-api")["spec"]["selector"], labels)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_pod_has_one_network_policy(overlay: str) -> None:
    policies = [d for d in documents(overlay) if d["kind"] == "NetworkPolicy"]
    for workload in (d for d in documents(overlay) if d["kind"] in WORKLOADS):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        if labels["app.kubernetes.io/name"] != "devdir":
            continue  # the dev overlay's PostgreSQL
        chosen = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        assert len(chosen) == 1, (workload["metadata"]["name"], [p["metadata"]["name"] for p in chosen])
        assert chosen[0]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # The worker: PostgreSQL and DNS out, exactly as the API; in, only its health port (the kubelet's probes).
    worker = one(overlay, "NetworkPolicy", "devdir-worker")["spec"]
    assert worker["egress"] == one(overlay, "NetworkPolicy", "devdir")["spec"]["egress"]
    (container,) = one(overlay, "Deployment", "devdir-worker")["spec"]["template"]["spec"]["containers"]
    (health,) = container["ports"]
    assert worker["ingress"] == [{"ports": [{"protocol": "TCP", "port": health["containerPort"]}]}]


def test_no_real_secret_is_committed() -> None:
    placeholder = one("base", "Secret", "devdir-secrets")["stringData"]["SECRET_KEY"]
    assert len(placeholder) < 32  # the service refuses to start with it
    prod = (K8S / "overlays/prod/secrets.env").read_text()
    assert "SECRET_KEY=change-me" in prod
