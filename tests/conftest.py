"""Fixtures: a real PostgreSQL (embedded unless TEST_DATABASE_URL is set), an app per test, an HTTP client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from litestar import Litestar

from service.accounts.auth import TokenIssuer, build_auth
from service.accounts.schemas import Role
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
    return Settings(
        database_url=database_url,
        db_pool_size=5,
        db_max_overflow=5,
        secret_key=TEST_SECRET,
        login_attempts_per_minute=1000,  # the rate limit has its own test
    )


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


TEST_SECRET = "a-test-signing-key-of-forty-characters!!"


def token(role: Role = "admin", account_id: int = 0, secret: str = TEST_SECRET) -> str:
    """A bearer token as the service issues it (no account behind it unless `account_id` names one)."""
    return TokenIssuer(build_auth(Settings(secret_key=secret))).issue(account_id, role)


@asynccontextmanager
async def serve(app: Litestar, bearer: str | None = "admin") -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `app`, run with its lifespan in the test's own event loop, as a server runs it.

    It sends an admin's token (all scopes) unless `bearer` is another role, or None for no token at all.

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
        headers = {"Authorization": f"Bearer {token(bearer)}"} if bearer else {}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as client:
            yield client
    finally:
        stop.set()
        await lifespan


@pytest.fixture
async def client(app: Litestar, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await run_sql(database_url, "TRUNCATE developers, users RESTART IDENTITY")
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
