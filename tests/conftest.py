"""Fixtures: a real server (an embedded PostgreSQL unless TEST_DATABASE_URL names one, PostgreSQL's or MariaDB's), an
app per test, an HTTP client; and the `postgresql_only(reason)` marker: a test of what only PostgreSQL has (the
pooler, hot standbys, the embedded server, what a test reads at PostgreSQL's wire) skips with its reason when the
whole run is on MariaDB."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar import Litestar

from service.app import create_app
from service.core.settings import Settings
from service.observability.log_writer import writer
from tests import mariadb, pgbouncer
from tests.client import TEST_SECRET, serve
from tests.database import empty, fresh_database, server_url
from tests.pgbouncer import POOLED_RUN, PgBouncer, app_settings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "postgresql_only(reason): tests a feature only PostgreSQL has; skipped with `reason` when the whole run is on "
        "MariaDB (TEST_DATABASE_URL=mysql://...)",
    )
    config.addinivalue_line(
        "markers", "mariadb: exercises MariaDB's own implementations on the tests' MariaDB (tests/mariadb.py)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # The tests of MariaDB's own implementations, whatever the run's database (`-m "not mariadb"` leaves them
        # out: CI runs them once, in the run against the PostgreSQL on 127.0.0.1).
        if "mariadb" in item.path.name or "mariadb_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mariadb)
    if not mariadb.run_on_mariadb():
        return
    for item in items:
        if marker := item.get_closest_marker("postgresql_only"):
            item.add_marker(pytest.mark.skip(reason=f"PostgreSQL only: {postgresql_only_reason(marker)}"))


def postgresql_only_reason(marker: pytest.Mark) -> str:
    reason = marker.args[0] if marker.args else marker.kwargs.get("reason")
    if not reason:
        raise pytest.UsageError("pytest.mark.postgresql_only needs a reason naming the feature")
    return str(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with server_url() as url:
        yield url


@pytest.fixture(scope="session", autouse=POOLED_RUN)
def run_pooler(pg_server: str) -> Iterator[PgBouncer | None]:
    """Under TEST_DB_POOLER=transaction, the PgBouncer every app of the run goes through (tests/pgbouncer.py)."""
    if not POOLED_RUN:
        yield None
        return
    with pgbouncer.running(pg_server) as pooler:
        pgbouncer.RUN_POOLER = pooler
        try:
            yield pooler
        finally:
            pgbouncer.RUN_POOLER = None


@pytest.fixture(scope="session")
def database_url(pg_server: str) -> Iterator[str]:
    """A fresh database, straight on the server (what the tests' own SQL uses); apps may reach it through the
    run's pooler (`settings`, `tests.pgbouncer.app_settings`)."""
    with fresh_database(pg_server) as url:
        yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Never read from the environment: tests must not touch DATABASE_URL or any other setting of the host.
    return app_settings(
        database_url,
        db_pool_size=5,
        db_max_overflow=5,
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
    await empty(database_url, "developers", "users")
    async with serve(app) as http:
        yield http


@pytest.fixture(autouse=True)
def log_lines_with_their_test() -> Iterator[None]:
    """A test's log lines are written before it ends, so pytest shows them with that test (the writer batches)."""
    yield
    if writer.pending:
        writer.flush()


# MariaDB in every run (tests/mariadb.py): for the tests of MariaDB's own implementations and of what differs.


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """A fresh, migrated database on the tests' MariaDB (skips, or fails in CI, where none answers)."""
    with mariadb.fresh_database(mariadb.server_url()) as url:
        yield url


@pytest.fixture
def mariadb_settings(mariadb_url: str) -> Settings:
    return Settings(
        database_url=mariadb_url,
        secret_key=TEST_SECRET,
        db_pool_size=5,
        db_max_overflow=5,
        login_attempts_per_minute=1000,
    )


@pytest.fixture
async def mariadb_app(mariadb_settings: Settings) -> AsyncIterator[Litestar]:
    app = create_app(mariadb_settings)
    yield app
    await app.state.feed.engine.dispose()


@pytest.fixture
async def mariadb_client(mariadb_app: Litestar, mariadb_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await mariadb.empty(mariadb_url, "developers", "users")
    async with serve(mariadb_app) as http:
        yield http
