"""The Kubernetes manifests as a cluster would receive them: each overlay rendered by `kubectl kustomize`."""

from __future__ import annotations

import subprocess
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
