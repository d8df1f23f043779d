"""The Kubernetes manifests as a cluster would receive them: each overlay rendered by `kubectl kustomize`."""

from __future__ import annotations

import subprocess
from base64 import b64decode
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from service.core.settings import Settings

K8S = Path(__file__).parents[2] / "k8s"


@cache
def render(target: str) -> str:
    path = K8S / ("base" if target == "base" else f"overlays/{target}")
    return subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True).stdout


def documents(target: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(render(target)) if doc]


def one(target: str, kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [d for d in documents(target) if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    return found


def env_of(target: str, kind: str, name: str) -> list[dict[str, Any]]:
    """The `env` list of a workload's one container (empty when it has none)."""
    (container,) = one(target, kind, name)["spec"]["template"]["spec"]["containers"]
    env: list[dict[str, Any]] = container.get("env", [])
    return env


def replica_urls(target: str, kind: str, name: str) -> tuple[str, ...]:
    """DATABASE_REPLICA_URLS as a workload's process reads it: its container's own variable, else the Secret's
    (envFrom), parsed as service/core/settings.py parses it. `$(VAR)` is left as it is (the kubelet expands it)."""
    own = {v["name"]: v["value"] for v in env_of(target, kind, name) if "value" in v}
    secret = one(target, "Secret")
    stored = secret.get("stringData", {}) | {k: b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    value = own.get("DATABASE_REPLICA_URLS", stored.get("DATABASE_REPLICA_URLS", ""))
    return Settings.from_env({"DATABASE_REPLICA_URLS": value}).replica_urls


def max_pods(target: str, kind: str, name: str) -> int:
    """The most pods of a Deployment at once: its HPA's maximum, else its replicas, plus a rollout's surge."""
    spec = one(target, kind, name)["spec"]
    scalers = [d for d in documents(target) if d["kind"] == "HorizontalPodAutoscaler"]
    bounds = [h["spec"]["maxReplicas"] for h in scalers if h["spec"]["scaleTargetRef"]["name"] == name]
    replicas: int = bounds[0] if bounds else spec["replicas"]
    surge: int = spec["strategy"]["rollingUpdate"]["maxSurge"]
    return replicas + surge


def setting(config: dict[str, str], name: str) -> float:
    """A numeric setting as the pods see it: the ConfigMap's value read as service/core/settings.py reads it, else
    its default there."""
    value = getattr(Settings.from_env({k: v for k, v in config.items() if k in Settings.env_names()}), name.lower())
    assert isinstance(value, int | float)
    return value


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels and matchExpressions) selects these labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True
