"""A server that refuses new connections (SQLSTATE 53300, "too many clients") is a 503 on every route, the hot
reads and the export included: they take their connection through `engine.raw_connection()`, which raises the
dialect's own error rather than SQLAlchemy's. The refusal here is real: a role whose CONNECTION LIMIT is 0."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from service.app import create_app
from service.core.settings import Settings
from tests.client import TEST_SECRET, serve
from tests.database import run_sql
from tests.postgresql_only import ROLE_LIMIT

pytestmark = ROLE_LIMIT

ROUTES = ["/api/developers/1", "/api/developers", "/api/developers/export?format=csv", "/api/imports"]


@pytest.fixture
def refused_url(database_url: str) -> Iterator[str]:
    role = f"devdir_refused_{secrets.token_hex(4)}"
    asyncio.run(run_sql(database_url, f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0"))
    try:
        yield make_url(database_url).set(username=role).render_as_string(hide_password=False)
    finally:
        asyncio.run(run_sql(database_url, f"DROP ROLE {role}"))


@pytest.mark.parametrize("route", ROUTES)
async def test_too_many_clients_is_503(route: str, refused_url: str) -> None:
    # Straight to the server, whatever the run's pooler: a pooler would log in as its own user, without the limit.
    app = create_app(Settings(database_url=refused_url, secret_key=TEST_SECRET))
    async with serve(app) as client:
        response = await client.get(route)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]
    assert "unavailable" in response.json()["detail"]
