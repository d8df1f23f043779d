"""Fixtures: a real PostgreSQL (embedded unless TEST_DATABASE_URL is set), an app per test, an HTTP client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from litestar import Litestar

from service.app import create_app
from service.settings import Settings
from tests.database import fresh_database, run_sql, server_url


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with server_url() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(pg_server: str) -> Iterator[str]:
    with fresh_database(pg_server) as url:
        yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Never read from the environment: tests must not touch DATABASE_URL or any other setting of the host.
    return Settings(database_url=database_url, db_pool_size=5, db_max_overflow=5)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `app`, run with its lifespan in the test's own event loop, as a server runs it.

    (Litestar's AsyncTestClient runs the app in a second loop, where a connection held by the test is unusable.)
    """
    started, stop = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:
        # Entered and left in one task: anyio's cancel scopes inside the lifespan demand it, and pytest-asyncio
        # runs a fixture's setup and teardown in different tasks.
        async with app.lifespan():
            started.set()
            await stop.wait()

    lifespan = asyncio.create_task(run_lifespan())
    await asyncio.wait([lifespan, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if lifespan.done():
        lifespan.result()  # startup failed: raise its error here
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            yield client
    finally:
        stop.set()
        await lifespan


@pytest.fixture
async def client(app: Litestar, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await run_sql(database_url, "TRUNCATE developers RESTART IDENTITY")
    async with serve(app) as http:
        yield http


async def create(client: httpx.AsyncClient, **fields: str) -> dict[str, Any]:
    response = await client.post("/api/developers", json=fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """`response` is an RFC 9457 problem with this status; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = dict(response.json())
    assert body["status"] == status
    assert body["title"]
    return body
