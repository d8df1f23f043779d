"""The prod overlay's reads from the hot standbys, checked offline: the API (and only the API) gets
DATABASE_REPLICA_URLS, pointing at the standbys' transaction-mode Pooler and built from the operator's secret as
DATABASE_URL is; the standbys' connection arithmetic written beside the manifests holds for the numbers in them; the
standbys send feedback; the API's /tmp holds the exports it spools."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import pytest

from tests.deploy.manifests import documents, env_of, max_pods, one, replica_urls, setting
from tests.deploy.test_manifests import OVERLAYS, quantity
from tests.deploy.test_pooler import AUTH_QUERY, SUPERUSER_RESERVED, pooler

# An export in NDJSON is about this many bytes per developer, and the directory the prod overlay is sized for has
# this many developers (k8s/overlays/prod/kustomization.yaml, the API's /tmp).
EXPORT_BYTES_PER_ROW = 110
DIRECTORY_ROWS = 1_000_000

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed (apt-get install kubectl)"
)


def test_api_reads_from_the_standbys_through_their_pooler() -> None:
    cluster = one("prod", "Cluster")
    standbys = pooler("ro")
    (url,) = (urlsplit(u) for u in replica_urls("prod", "Deployment", "devdir-api"))
    assert (url.hostname, url.port) == (standbys["metadata"]["name"], 5432)
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    assert (url.username, url.path) == (initdb["owner"], f"/{initdb['database']}")
    # The password through the same variable as DATABASE_URL's, defined earlier from the operator's secret.
    env = env_of("prod", "Deployment", "devdir-api")
    names = [variable["name"] for variable in env]
    by_name = {variable["name"]: variable for variable in env}
    assert url.password is not None
    variable = url.password.removeprefix("$(").removesuffix(")")
    assert names.index(variable) < names.index("DATABASE_REPLICA_URLS")
    assert by_name[variable]["valueFrom"]["secretKeyRef"] == {
        "name": f"{cluster['metadata']['name']}-app",
        "key": "password",
    }
    assert urlsplit(by_name["DATABASE_URL"]["value"]).password == url.password
    assert "DATABASE_REPLICA_URLS" not in one("prod", "Secret")["data"]


def test_standbys_pooler_pools_as_the_primarys_does() -> None:
    """The pods' DB_POOLER and DB_POOLER_PREPARED_STATEMENTS apply to the replica URLs too: the standbys' Pooler must
    be in transaction mode and keep prepared statements, as the primary's."""
    spec = pooler("ro")["spec"]
    assert spec["cluster"]["name"] == one("prod", "Cluster")["metadata"]["name"]
    assert spec["instances"] >= 2  # one lost leaves the other to carry every client
    assert spec["pgbouncer"]["poolMode"] == pooler("rw")["spec"]["pgbouncer"]["poolMode"] == "transaction"
    assert int(spec["pgbouncer"]["parameters"]["max_prepared_statements"]) > 0
    (pgbouncer,) = spec["template"]["spec"]["containers"]
    assert pgbouncer["image"] == pooler("rw")["spec"]["template"]["spec"]["containers"][0]["image"]
    # devdir-db-ro balances connections over the standbys; PgBouncer then takes its server connections in turn.
    assert spec["pgbouncer"]["parameters"]["server_round_robin"] == "1"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_api_reads_from_standbys(overlay: str) -> None:
    """The workers and the migration only write: no replica URL, so no standby pool and no lag monitor there."""
    assert replica_urls(overlay, "Deployment", "devdir-worker") == ()
    assert replica_urls(overlay, "Job", "devdir-migrate") == ()
    assert bool(replica_urls(overlay, "Deployment", "devdir-api")) == (overlay == "prod")  # dev has no standby


def test_standby_connections_fit_the_pooler_and_max_connections() -> None:
    """The standbys' sums in k8s/overlays/prod/kustomization.yaml, from the rendered numbers, counting every surge:
    each API pod opens a pool of DB_POOL_SIZE + DB_MAX_OVERFLOW per replica URL, and its lag monitor one connection
    per replica URL (and one to the primary, counted in test_pooler.py)."""
    cluster = one("prod", "Cluster")
    spec = cluster["spec"]
    assert spec["instances"] - 1 == 2  # two standbys
    postgres = spec["postgresql"]["parameters"]
    # One max_connections for every instance (CloudNativePG writes the same postgresql.conf on each).
    slots = int(postgres["max_connections"]) - int(postgres.get("superuser_reserved_connections", SUPERUSER_RESERVED))
    config = one("prod", "ConfigMap", "devdir-config")["data"]
    api_pods = max_pods("prod", "Deployment", "devdir-api")
    pool = setting(config, "DB_POOL_SIZE") + setting(config, "DB_MAX_OVERFLOW")
    per_pod = pool + 1  # a standby pool and the lag monitor's connection, per replica URL
    poolers = [d for d in documents("prod") if d["kind"] == "Pooler"]
    ro_poolers = {d["metadata"]["name"]: d for d in poolers if d["spec"]["type"] == "ro"}
    direct, clients = 0.0, dict.fromkeys(ro_poolers, 0.0)
    for url in replica_urls("prod", "Deployment", "devdir-api"):
        host = urlsplit(url).hostname
        if host in ro_poolers:
            clients[host] += api_pods * per_pod
        else:  # straight to the standbys' Service: every connection is a standby's
            assert host == f"{cluster['metadata']['name']}-ro", host
            direct += api_pods * per_pod
    # Each ro Pooler takes all its clients in either of its instances alone.
    for name, found in ro_poolers.items():
        assert clients[name] <= int(found["spec"]["pgbouncer"]["parameters"]["max_client_conn"]), name
    # The Poolers' server connections, capped per PgBouncer by max_db_connections, a rollout's surge pod counted,
    # all on one standby while the other is away (devdir-db-ro then has one endpoint); so are the direct ones.
    servers = 0
    for found in ro_poolers.values():
        parameters = found["spec"]["pgbouncer"]["parameters"]
        assert int(parameters["default_pool_size"]) <= int(parameters["max_db_connections"])
        pods = found["spec"]["instances"] + found["spec"]["deploymentStrategy"]["rollingUpdate"]["maxSurge"]
        servers += pods * (int(parameters["max_db_connections"]) + AUTH_QUERY)
    assert servers + direct <= slots
    # The Pooler is what lets the API read from standbys at this scale: straight, one standby could not take it.
    assert api_pods * per_pod > slots


def test_standbys_hold_back_vacuum_for_their_reads() -> None:
    parameters = one("prod", "Cluster")["spec"]["postgresql"]["parameters"]
    assert parameters["hot_standby_feedback"] == "on"
    assert "max_standby_streaming_delay" not in parameters  # PostgreSQL's 30 s (database.yaml says why)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_tmp_holds_the_exports_it_spools(overlay: str) -> None:
    """An export from a standby is spooled whole under /tmp before its first byte goes out: room for
    EXPORT_MAX_CONCURRENT of them over what the base gives every pod, in an API that reads from standbys."""

    def tmp_size(target: str, name: str) -> float:
        (volume,) = one(target, "Deployment", name)["spec"]["template"]["spec"]["volumes"]
        (mount,) = one(target, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        assert (volume["name"], mount["mountPath"]) == (mount["name"], "/tmp")
        return quantity(volume["emptyDir"]["sizeLimit"])

    base = tmp_size("base", "devdir-api")
    config = one(overlay, "ConfigMap", "devdir-config")["data"]
    if replica_urls(overlay, "Deployment", "devdir-api"):
        spooled = setting(config, "EXPORT_MAX_CONCURRENT") * EXPORT_BYTES_PER_ROW * DIRECTORY_ROWS
        assert tmp_size(overlay, "devdir-api") >= base + spooled
    else:
        assert tmp_size(overlay, "devdir-api") == base
    assert tmp_size(overlay, "devdir-worker") == base  # the workers export nothing
