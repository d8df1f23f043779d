"""Custom resources checked offline against the schemas in tests/deploy/schemas, for the kinds whose CRD ships no
schema we can read offline. Each is written by hand from its CRD's fields and refers to kubernetes-validate's
strict schemas for the Kubernetes types inside (a pod template, object metadata), so those parts are checked as
strictly as the built-in kinds are."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

KUBERNETES = "1.37.0"  # the current minor version, as kubernetes-validate knows it
SCHEMAS = Path(__file__).parent / "schemas"


def schema_file(document: dict[str, Any]) -> Path:
    """pooler-postgresql-v1.json for a postgresql.cnpg.io/v1 Pooler (kubernetes-validate's naming)."""
    group, version = document["apiVersion"].split("/")
    return SCHEMAS / f"{document['kind'].lower()}-{group.split('.')[0]}-{version}.json"


def _definitions() -> Resource[Any]:
    folder = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBERNETES}-local-strict"
    return Resource.from_contents(json.loads((folder / "_definitions.json").read_text()))


def errors(document: dict[str, Any]) -> list[str]:
    """What the schema of the document's kind finds wrong with it, as `path: message` lines; none when valid."""
    schema = json.loads(schema_file(document).read_text())
    validator = jsonschema.Draft202012Validator(schema, registry=_definitions() @ Registry())
    found = validator.iter_errors(document)
    return sorted(f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in found)
