"""A statement that outlives its statement_timeout is a 503 with Retry-After, and leaves nothing written."""

from __future__ import annotations

import pytest
from litestar import Litestar

from service.app import create_app
from tests.client import assert_problem, serve
from tests.database import empty, fetch
from tests.developers.api import encode, people
from tests.pgbouncer import app_settings


@pytest.mark.parametrize("on_conflict", ["error", "skip", "update"])
async def test_bulk_statement_timeout_is_503(database_url: str, on_conflict: str) -> None:
    await empty(database_url, "developers")
    # 1 ms: COPYing 10,000 rows into the indexed table (error mode) or INSERT ... SELECT of 30,000 rows (skip,
    # update) takes far longer, whether the statement runs on asyncpg directly or through SQLAlchemy.
    app: Litestar = create_app(app_settings(database_url, bulk_statement_timeout_ms=1))
    async with serve(app) as client:
        response = await client.post(
            "/api/developers/bulk",
            params={"on_conflict": on_conflict},
            content=encode("ndjson", people(30_000)),
            headers={"content-type": "application/x-ndjson"},
        )
        problem = assert_problem(response, 503)
        assert "statement timeout" in problem["detail"]
        assert response.headers["retry-after"] == "1"
        assert await fetch(database_url, "SELECT id FROM developers") == []
        # The connection whose statement was cancelled went back to the pool usable.
        created = await client.post("/api/developers", json={"name": "A", "email": "a@x.io", "specialty": "s"})
        assert created.status_code == 201
