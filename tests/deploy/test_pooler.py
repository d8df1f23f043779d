"""The prod overlay's transaction-mode pooler on the primary (CloudNativePG's Pooler, PgBouncer), checked offline:
the Poolers validate against their schema, the pods pool through the primary's and keep what needs a session on the
primary, and the primary's connection arithmetic written beside the manifests holds for the numbers in them (the
standbys' side is in test_replicas.py)."""

from __future__ import annotations

import copy
import shutil
from typing import Any
from urllib.parse import urlsplit

import pytest

from service.system.serving import BACKPRESSURE
from tests.deploy import crds
from tests.deploy.manifests import documents, env_of, max_pods, one, replica_urls, selects, setting

PROD_PODS = (("Deployment", "devdir-api"), ("Deployment", "devdir-worker"), ("Job", "devdir-migrate"))
SUPERUSER_RESERVED = 3  # PostgreSQL's default superuser_reserved_connections, unless the Cluster sets it
AUTH_QUERY = 1  # each PgBouncer's connection for its auth query (another database/user pair than the service's)

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed (apt-get install kubectl)"
)


def poolers(target: str = "prod") -> list[dict[str, Any]]:
    return [d for d in documents(target) if d["kind"] == "Pooler"]


def pooler(kind: str = "rw") -> dict[str, Any]:
    """The prod overlay's one Pooler of this type: rw, the primary's; ro, the standbys'."""
    (found,) = [d for d in poolers() if d["spec"]["type"] == kind]
    return found


def test_prod_has_one_transaction_pooler_on_the_primary() -> None:
    spec = pooler("rw")["spec"]
    assert spec["cluster"]["name"] == one("prod", "Cluster")["metadata"]["name"]
    assert spec["instances"] >= 2  # one lost leaves the other to carry every client
    assert spec["pgbouncer"]["poolMode"] == "transaction"
    assert int(spec["pgbouncer"]["parameters"]["max_prepared_statements"]) > 0
    assert not poolers("dev")


def test_poolers_validate_against_their_schema() -> None:
    assert {p["spec"]["type"] for p in poolers()} == {"rw", "ro"}
    for found in poolers():
        assert crds.schema_file(found).exists()
        assert crds.errors(found) == [], found["metadata"]["name"]


def test_pooler_schema_refuses_what_the_operator_would() -> None:
    """The schema can fail: unknown fields, a pool mode PgBouncer's Pooler has not, a parameter outside the
    operator's allow-list, a number where the CRD wants a string, a mistyped field of the pod template."""
    bad = copy.deepcopy(pooler())
    bad["spec"]["replicas"] = 2
    bad["spec"]["pgbouncer"]["poolMode"] = "statement"
    bad["spec"]["pgbouncer"]["parameters"]["pool_mode"] = "session"
    bad["spec"]["pgbouncer"]["parameters"]["max_client_conn"] = 1000
    bad["spec"]["template"]["spec"]["containers"][0]["imag"] = "pgbouncer"
    paths = sorted(error.split(":")[0] for error in crds.errors(bad))
    assert paths == sorted(
        [
            "spec",
            "spec.pgbouncer.poolMode",
            "spec.pgbouncer.parameters",
            "spec.pgbouncer.parameters.max_client_conn",
            "spec.template.spec.containers.0",
        ]
    )


def test_prepared_statements_are_kept_only_where_the_pooler_keeps_them() -> None:
    """DB_POOLER_PREPARED_STATEMENTS=true needs PgBouncer >= 1.21 with max_prepared_statements > 0."""
    config = one("prod", "ConfigMap", "devdir-config")["data"]
    assert config["DB_POOLER"] == "transaction"
    assert config["DB_POOLER_PREPARED_STATEMENTS"] == "true"
    spec = pooler()["spec"]
    assert int(spec["pgbouncer"]["parameters"]["max_prepared_statements"]) > 0
    (pgbouncer,) = spec["template"]["spec"]["containers"]
    assert pgbouncer["name"] == "pgbouncer"  # merged into the operator's container of that name
    major, minor = (int(part) for part in pgbouncer["image"].rsplit(":", 1)[1].split(".")[:2])
    assert (major, minor) >= (1, 21)
    dev = one("dev", "ConfigMap", "devdir-config")["data"]
    assert (dev["DB_POOLER"], dev["DB_POOLER_PREPARED_STATEMENTS"]) == ("none", "false")


@pytest.mark.parametrize(("kind", "name"), PROD_PODS)
def test_pods_pool_through_the_pooler_and_keep_sessions_on_the_primary(kind: str, name: str) -> None:
    cluster = one("prod", "Cluster")
    app_secret = f"{cluster['metadata']['name']}-app"  # the operator's secret for the application user
    env = env_of("prod", kind, name)
    names = [variable["name"] for variable in env]
    by_name = {variable["name"]: variable for variable in env}
    # DATABASE_URL: the Pooler's Service (named as the Pooler), the application user and database, the password
    # from the operator's secret through a variable defined earlier (Kubernetes expands only those).
    url = urlsplit(by_name["DATABASE_URL"]["value"])
    assert (url.hostname, url.port) == (pooler()["metadata"]["name"], 5432)
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    assert (url.username, url.path) == (initdb["owner"], f"/{initdb['database']}")
    assert url.password is not None
    variable = url.password.removeprefix("$(").removesuffix(")")
    assert names.index(variable) < names.index("DATABASE_URL")
    assert by_name[variable]["valueFrom"]["secretKeyRef"] == {"name": app_secret, "key": "password"}
    # DATABASE_DIRECT_URL: the secret's `uri`, which the operator points at the primary's Service, <cluster>-rw.
    assert by_name["DATABASE_DIRECT_URL"]["valueFrom"]["secretKeyRef"] == {"name": app_secret, "key": "uri"}
    secret = one("prod", "Secret")["data"]
    assert "DATABASE_URL" not in secret
    assert "DATABASE_DIRECT_URL" not in secret


def test_the_service_may_reach_the_poolers() -> None:
    pods = {p["metadata"]["name"]: p["spec"]["template"]["metadata"]["labels"] for p in poolers()}
    for name, labels in pods.items():
        for policy in ("devdir", "devdir-worker"):
            (to_database,) = [
                rule
                for rule in one("prod", "NetworkPolicy", policy)["spec"]["egress"]
                if {"protocol": "TCP", "port": 5432} in rule["ports"]
            ]
            assert any(selects(peer["podSelector"], labels) for peer in to_database["to"]), (name, policy)
        # Each Pooler's two pods on two nodes: its spread counts its own pods, not the other Pooler's.
        (found,) = [p for p in poolers() if p["metadata"]["name"] == name]
        spread = found["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert [other for other, theirs in pods.items() if selects(spread["labelSelector"], theirs)] == [name]


def test_prod_connections_fit_the_pooler_and_max_connections() -> None:
    """The primary's sums in k8s/overlays/prod/kustomization.yaml, from the rendered numbers, counting every
    surge."""
    cluster = one("prod", "Cluster")["spec"]
    assert cluster["instances"] == 3
    postgres = cluster["postgresql"]["parameters"]
    slots = int(postgres["max_connections"]) - int(postgres.get("superuser_reserved_connections", SUPERUSER_RESERVED))
    spec = pooler()["spec"]
    parameters = spec["pgbouncer"]["parameters"]
    config = one("prod", "ConfigMap", "devdir-config")["data"]
    api_pods, worker_pods = (
        max_pods("prod", "Deployment", "devdir-api"),
        max_pods("prod", "Deployment", "devdir-worker"),
    )
    assert api_pods == one("prod", "HorizontalPodAutoscaler")["spec"]["maxReplicas"] + 1
    # Direct, on the primary: each API pod's change-feed LISTEN and its replica lag monitor's connection to the
    # primary (service/db/replicas.py: one to DATABASE_DIRECT_URL in an API process with replica URLs, whatever their
    # number), each worker's queue connection (its scheduler shares it), one migration. The workers and the
    # migration have no replica URLs (test_replicas.py).
    monitor = 1 if replica_urls("prod", "Deployment", "devdir-api") else 0
    direct = api_pods * (1 + monitor) + worker_pods * 1 + 1
    # The Pooler's server connections: max_db_connections caps each PgBouncer's for the service's database,
    # whatever default_pool_size and reserve_pool_size say; a rollout adds its surge pod.
    assert int(parameters["default_pool_size"]) <= int(parameters["max_db_connections"])
    pooler_pods = spec["instances"] + spec["deploymentStrategy"]["rollingUpdate"]["maxSurge"]
    servers = pooler_pods * (int(parameters["max_db_connections"]) + AUTH_QUERY)
    assert servers + direct <= slots
    # The pooler's clients: the API's pools and the workers'. Either instance alone takes them all.
    pool = setting(config, "DB_POOL_SIZE") + setting(config, "DB_MAX_OVERFLOW")
    clients = api_pods * pool + worker_pods * setting(config, "WORKER_POOL_SIZE")
    assert clients <= int(parameters["max_client_conn"])
    # The pooler is what lets the API scale this far: straight to PostgreSQL these pods would not fit.
    assert api_pods * (pool + 1) > slots
    # granian's backpressure caps accepted connections, idle keep-alive ones included: at the pool's size it
    # would starve every client past the pool's and the probes. The pool bounds the database work itself.
    assert int(config.get("GRANIAN_BACKPRESSURE", BACKPRESSURE)) >= 50 * pool
