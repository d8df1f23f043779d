"""`/health` follows the process; `/ready` follows the database and its schema revision."""

from __future__ import annotations

from typing import Any

import httpx

from service.app import create_app
from service.settings import Settings
from service.system.health import migration_head
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
        assert response.json()["database"] == "unreachable"
        assert (await client.get("/health")).status_code == 200


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
