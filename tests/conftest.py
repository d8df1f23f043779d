"""Fixtures: a real PostgreSQL (embedded unless TEST_DATABASE_URL is set), an app per test, an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar import Litestar

from service.app import create_app
from service.core.settings import Settings
from service.observability.log_writer import writer
from tests.client import TEST_SECRET, serve
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
async def app(settings: Settings) -> AsyncIterator[Litestar]:
    app = create_app(settings)
    yield app
    # A served app closes its pool on shutdown (service.db.config.engine_disposer); a test may also use the app's
    # engine without ever serving it, and its pool must not stay connected to the end of the run either.
    await app.state.feed.engine.dispose()


@pytest.fixture
async def client(app: Litestar, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await run_sql(database_url, "TRUNCATE developers, users RESTART IDENTITY")
    async with serve(app) as http:
        yield http


@pytest.fixture(autouse=True)
def log_lines_with_their_test() -> Iterator[None]:
    """A test's log lines are written before it ends, so pytest shows them with that test (the writer batches)."""
    yield
    if writer.pending:
        writer.flush()
