"""The pooler guard: behind a transaction-mode pooler (DB_POOLER=transaction), nothing the app or its worker sends
over the pooled URL leaves state on the session, on every route and every worker task, as seen at the wire
(tests/pgwire.py records each connection's messages; tests/db/session_state.py judges them).

The proxy sits in front of the run's PgBouncer under TEST_DB_POOLER=transaction, else in front of PostgreSQL.
A route added to the app without being driven in tests/db/pooler_routes.py fails here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from advanced_alchemy.alembic.commands import AlembicCommands

from service.app import create_app
from service.core.settings import Settings
from service.db.config import VERSION_TABLE, sqlalchemy_config
from service.imports import scheduler
from service.imports.worker import Worker
from tests import pgbouncer
from tests.client import TEST_SECRET
from tests.database import fetch, fetchval, fresh_database, run_sql
from tests.db.pooler_routes import drive, record_routes, routes
from tests.db.session_state import report, violations
from tests.developers.feed_client import Running, bearer, listening
from tests.imports.api import until_job
from tests.pgwire import FEED_APPLICATION, Wire, counting_proxy
from tests.postgresql_only import POOLER
from tests.server import served

pytestmark = POOLER

FEED = FEED_APPLICATION.decode()
_RESET = (
    "TRUNCATE users, developers, developer_events, developer_events_horizon, import_jobs, import_uploads, pgqueuer "
    "RESTART IDENTITY"
)


@pytest.fixture(autouse=True)
async def emptied(database_url: str) -> AsyncIterator[None]:
    await run_sql(database_url, _RESET)
    yield
    await run_sql(database_url, _RESET)


def pooled(wire: Wire, database_url: str, **fields: Any) -> Settings:
    fields = {"database_direct_url": database_url, "db_pooler": "transaction"} | fields
    return Settings(
        database_url=wire.url,
        secret_key=TEST_SECRET,
        login_attempts_per_minute=1000,
        worker_heartbeat_seconds=1.0,
        worker_shutdown_seconds=2.0,
        events_poll_seconds=0.2,
        **fields,
    )


@asynccontextmanager
async def serving(settings: Settings, database_url: str) -> AsyncIterator[tuple[Running, set[tuple[str, str]]]]:
    app = create_app(settings)
    reached = record_routes(app)
    try:
        async with served(app) as url, httpx.AsyncClient(base_url=url, headers=bearer(), timeout=60) as api:
            await listening(app.state.feed)
            yield Running(app, app.state.feed, url, api, database_url), reached
    finally:
        await app.state.feed.engine.dispose()


async def everything(settings: Settings, database_url: str) -> None:
    """Every route, then a worker that runs the queued imports to their end, then the scheduler's tasks."""
    async with serving(settings, database_url) as (run, reached):
        jobs = await drive(run)
        worker = Worker(settings)
        assert await scheduler.requeue_orphaned_jobs(worker.engine) == [jobs[-1]]
        async with worker.lifespan(None):
            for job in jobs:
                assert (await until_job(run.api, job))["status"] == "succeeded"
        assert await scheduler.delete_expired_events(worker.engine, 0) > 0  # hours=0: every event is older
        assert await scheduler.delete_finished_jobs(worker.engine, 0) == len(jobs) + 1  # and the cancelled one
        await worker.engine.dispose()
        listeners = await fetch(
            database_url,
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
            FEED,
        )
        assert run.feed.state == "listening"
        assert len(listeners) == 1, listeners
    assert reached == routes(run.app), f"routes never driven: {sorted(routes(run.app) - reached)}"


def upstream(database_url: str) -> str:
    return database_url if pgbouncer.RUN_POOLER is None else pgbouncer.RUN_POOLER.url(database_url)


def assert_pooled_only(wire: Wire) -> None:
    """Only the request pools came through the pooled URL: the feed's LISTEN and the queue went direct."""
    applications = {session.application for session in wire.sessions}
    assert applications == {"devdir", "devdir worker"}, applications
    assert not [s for s in wire.statements if "LISTEN" in s.upper()]
    begins = [m.sql for s in wire.sessions for m in s.messages if m.kind == "Q" and m.sql.startswith("BEGIN")]
    assert begins
    assert all(";SET LOCAL statement_timeout = " in sql for sql in begins), begins[:5]


async def test_nothing_session_level_goes_over_the_pooled_url(database_url: str) -> None:
    async with counting_proxy(upstream(database_url)) as wire:
        await everything(pooled(wire, database_url), database_url)
    assert not (found := violations(wire.sessions)), report(found)
    assert_pooled_only(wire)
    parses = [m for s in wire.sessions for m in s.messages if m.kind == "P"]
    assert parses
    assert {m.statement for m in parses} == {""}  # unnamed statements only


async def test_with_prepared_statements_only_named_parses_differ(database_url: str) -> None:
    # PgBouncer 1.18 does not keep prepared statements: the proxy goes straight to PostgreSQL.
    async with counting_proxy(database_url) as wire:
        await everything(pooled(wire, database_url, db_pooler_prepared_statements=True), database_url)
    assert not (found := violations(wire.sessions, named=True)), report(found)
    assert_pooled_only(wire)
    assert any(m.statement for s in wire.sessions for m in s.messages if m.kind == "P")


async def test_the_guard_catches_an_app_not_told_of_the_pooler(database_url: str) -> None:
    async with counting_proxy(database_url) as wire:
        settings = pooled(wire, database_url, db_pooler="none", database_direct_url="")
        async with serving(settings, database_url) as (run, _):
            for _ in range(2):
                assert (await run.api.get("/api/developers")).status_code == 200
    reasons = {v.reason.split("'")[0] for v in violations(wire.sessions)}
    assert "named statement " in reasons  # asyncpg's statement cache
    assert "LISTEN/UNLISTEN belongs to the session" in reasons  # the feed, with no direct URL


@pytest.fixture
def blank_database(pg_server: str) -> Iterator[str]:
    with fresh_database(pg_server, migrate=False) as url:
        yield url


async def test_migrations_send_nothing_through_the_pooled_url(blank_database: str) -> None:
    async with counting_proxy(blank_database) as wire:
        settings = pooled(wire, blank_database)
        commands = AlembicCommands(sqlalchemy_config=sqlalchemy_config(settings))
        await asyncio.to_thread(commands.upgrade, "head")  # Alembic runs its own event loop
    assert wire.sessions == []
    assert await fetchval(blank_database, f"SELECT count(*) FROM {VERSION_TABLE}") == 1
