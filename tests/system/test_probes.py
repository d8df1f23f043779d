"""`/health` follows the process; `/ready` follows the database and its schema revision."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from service.app import create_app
from service.core.database_urls import backend_of
from service.core.settings import Settings
from service.system.health import migration_head, unready_database
from tests.client import TEST_SECRET, serve
from tests.database import fresh_database, run_sql
from tests.db.unreachable import unreachable_app


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["revision"] == migration_head()


async def test_ready_is_503_when_database_is_unreachable() -> None:
    async with serve(unreachable_app()) as client:
        response = await client.get("/ready")
        assert response.status_code == 503
        assert (response.json()["database"], response.json()["detail"]) == ("unreachable", "ConnectionRefusedError")
        assert (await client.get("/health")).status_code == 200


async def ready_with(database_url: str) -> httpx.Response:
    # Straight to the server in every run: how it refuses a role or a database is the point (the tests' PgBouncer
    # logs every client in as one user).
    app = create_app(Settings(secret_key=TEST_SECRET, database_url=database_url, db_connect_timeout=5))
    try:
        async with serve(app) as client:
            return await client.get("/ready")
    finally:
        await app.state.feed.engine.dispose()


async def test_ready_tells_credentials_refused_from_a_database_that_is_down(database_url: str) -> None:
    # The same server, which answers: as a role it refuses (its pg_hba.conf trusts local users, so a refused role
    # is the credential failure it can show; a wrong password is the same SQLSTATE class), and for a database it
    # does not have. Neither is "unreachable", and neither answer shows the password or the role.
    refused = make_url(database_url).set(username="devdir_no_such_role", password="s3cret-not-to-show")
    response = await ready_with(refused.render_as_string(hide_password=False))
    assert response.status_code == 503
    body = response.json()
    refused_detail, missing_detail = REFUSALS[backend_of(database_url)]
    assert (body["database"], body["detail"]) == ("authentication failed", refused_detail)
    assert "s3cret" not in response.text
    assert "devdir_no_such_role" not in response.text
    missing = await ready_with(make_url(database_url).set(database="devdir_no_such_database").render_as_string())
    assert (missing.json()["database"], missing.json()["detail"]) == ("rejected", missing_detail)


# How each server refuses an unknown role (or user) and an unknown database, as /ready names it.
REFUSALS = {
    "postgresql": (
        "InvalidAuthorizationSpecificationError (SQLSTATE 28000)",
        "InvalidCatalogNameError (SQLSTATE 3D000)",
    ),
    "mariadb": ("OperationalError (SQLSTATE 28000)", "OperationalError (SQLSTATE 42000)"),
}


@pytest.mark.parametrize(
    ("error", "database"),
    [
        (asyncpg.InvalidPasswordError('password authentication failed for user "devdir"'), "authentication failed"),
        (asyncpg.InvalidAuthorizationSpecificationError("no pg_hba.conf entry"), "authentication failed"),
        (asyncpg.TooManyConnectionsError("sorry, too many clients already"), "rejected"),
        (asyncpg.CannotConnectNowError("the database system is starting up"), "rejected"),
        (ConnectionRefusedError(111, "Connection refused"), "unreachable"),
        (TimeoutError(), "unreachable"),
    ],
)
def test_each_driver_error_is_named_by_its_kind_never_its_message(error: Exception, database: str) -> None:
    state, detail = unready_database(error)
    assert state == database
    assert str(error) == "" or str(error) not in detail  # the message can name the user and the host


def test_ready_is_503_until_the_schema_is_at_head(pg_server: str) -> None:
    import asyncio

    async def probe(url: str) -> Any:
        async with serve(create_app(Settings(secret_key=TEST_SECRET, database_url=url))) as client:
            return await client.get("/ready")

    with fresh_database(pg_server, migrate=False) as url:
        unmigrated = asyncio.run(probe(url))
        assert unmigrated.status_code == 503
        assert unmigrated.json()["database"] == "schema not at head"
        assert unmigrated.json().get("revision") is None
        asyncio.run(run_sql(url, "CREATE TABLE alembic_versions (version_num varchar(32) PRIMARY KEY)"))
        asyncio.run(run_sql(url, "INSERT INTO alembic_versions VALUES ('0000old')"))
        behind = asyncio.run(probe(url))
        assert behind.status_code == 503
        assert behind.json()["revision"] == "0000old"
