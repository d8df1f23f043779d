"""Pool starvation and a dead database are answered 503 with Retry-After, promptly, and the service recovers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sqlalchemy
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.app import create_app
from service.db.config import sqlalchemy_config
from tests.client import serve
from tests.db.unreachable import unreachable_app
from tests.pgbouncer import app_settings

# Far above the pool timeout below, far below "hanging": the answer must not wait for anything but the pool.
PROMPT_SECONDS = 5.0


async def test_exhausted_pool_answers_503_then_recovers(database_url: str) -> None:
    settings = app_settings(database_url, db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.5)
    app = create_app(settings)
    async with serve(app) as client:
        engine = app.plugins.get(SQLAlchemyPlugin).config[0].get_engine()
        async with engine.connect() as held:  # the pool's only connection, held by someone else
            await held.exec_driver_sql("SELECT 1")
            for path in ("/api/developers", "/api/developers/1"):
                started = time.monotonic()
                response = await client.get(path)
                elapsed = time.monotonic() - started
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "1"
                assert response.headers["content-type"].startswith("application/problem+json")
                assert "busy" in response.json()["detail"]
                assert elapsed < PROMPT_SECONDS
            write = await client.post("/api/developers", json={"name": "n", "email": "e@x.io", "specialty": "s"})
            assert write.status_code == 503
        # Released: the same app serves again, and the refused write left nothing behind.
        recovered = await client.get("/api/developers")
        assert recovered.status_code == 200
        assert all(d["email"] != "e@x.io" for d in recovered.json()["items"])


async def test_database_down_is_503_not_500() -> None:
    async with serve(unreachable_app()) as client:
        requests: list[tuple[str, str, Any]] = [
            ("GET", "/api/developers", None),
            ("GET", "/api/developers/1", None),
            ("POST", "/api/developers", {"name": "n", "email": "e@x.io", "specialty": "s"}),
            ("DELETE", "/api/developers/1", None),
        ]
        for method, path, body in requests:
            response = await client.request(method, path, json=body)
            assert response.status_code == 503, (method, path, response.text)
            assert response.headers["retry-after"] == "1"
            assert "unavailable" in response.json()["detail"]
        assert (await client.get("/health")).status_code == 200


@asynccontextmanager
async def one_connection(database_url: str, *, pool_timeout: float) -> AsyncIterator[AsyncEngine]:
    """An engine whose pool holds exactly one connection, disposed of afterwards."""
    settings = app_settings(database_url, db_pool_size=1, db_max_overflow=0, db_pool_timeout=pool_timeout)
    engine = sqlalchemy_config(settings).get_engine()
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_a_connection_given_back_goes_to_the_longest_waiter(database_url: str) -> None:
    order: list[str] = []
    async with one_connection(database_url, pool_timeout=5) as engine:

        async def checkout(name: str) -> None:
            async with engine.connect() as connection:
                order.append(name)
                await connection.exec_driver_sql("SELECT 1")

        held = await engine.connect()
        await held.exec_driver_sql("SELECT 1")
        first = asyncio.create_task(checkout("first"))
        second = asyncio.create_task(checkout("second"))
        for _ in range(5000):  # until both wait in the pool's line
            if len(engine.sync_engine.pool._pool._waiters) == 2:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.001)
        await held.close()  # handed to `first`, which has not run yet: a newcomer must queue behind both
        assert engine.sync_engine.pool.checkedin() == 0
        await checkout("newcomer")
        assert order == ["first", "second", "newcomer"]
        await asyncio.gather(first, second)


async def test_a_waiter_that_times_out_leaves_the_line(database_url: str) -> None:
    async with one_connection(database_url, pool_timeout=0.2) as engine:
        async with engine.connect() as held:
            await held.exec_driver_sql("SELECT 1")
            with pytest.raises(sqlalchemy.exc.TimeoutError):
                await engine.connect()
        # The connection given back went to no one who had left: it is idle, and the next checkout takes it.
        pool = engine.sync_engine.pool
        assert (pool.checkedin(), pool.checkedout()) == (1, 0)  # type: ignore[attr-defined]
        async with engine.connect() as again:
            assert (await again.exec_driver_sql("SELECT 2")).scalar() == 2


async def _checkout(engine: AsyncEngine) -> AsyncConnection:
    return await engine.connect()


async def _in_line(engine: Any, waiting: int) -> None:
    for _ in range(5000):  # until `waiting` checkouts wait in the pool's line
        if sum(not waiter.done() for _, waiter in engine.sync_engine.pool._pool._waiters) == waiting:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never {waiting} checkouts in the pool's line")


async def test_a_waiter_behind_one_that_was_served_still_times_out(database_url: str) -> None:
    # One timer serves the whole line: set for the first waiter's deadline, it must be set again for the next
    # waiter's when the first was given a connection instead, or that next waiter would wait for ever.
    async with one_connection(database_url, pool_timeout=0.3) as engine:
        held = await engine.connect()
        await held.exec_driver_sql("SELECT 1")
        first = asyncio.create_task(_checkout(engine))
        await _in_line(engine, 1)
        await asyncio.sleep(0.05)  # so that the second deadline comes well after the first
        second = asyncio.create_task(_checkout(engine))
        await _in_line(engine, 2)
        await held.close()  # to `first`, which keeps it
        served = await asyncio.wait_for(first, PROMPT_SECONDS)
        with pytest.raises(sqlalchemy.exc.TimeoutError):
            await asyncio.wait_for(second, 30)  # a hang fails here, not as a timeout of the pool
        await served.close()
        pool = engine.sync_engine.pool
        assert (pool.checkedin(), pool.checkedout()) == (1, 0)  # type: ignore[attr-defined]


async def test_every_waiter_past_the_timeout_is_answered_and_the_line_empties(database_url: str) -> None:
    async with one_connection(database_url, pool_timeout=0.2) as engine:
        async with engine.connect() as held:
            await held.exec_driver_sql("SELECT 1")
            waiters = [asyncio.create_task(_checkout(engine)) for _ in range(50)]
            outcomes = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 30)
            assert all(isinstance(outcome, sqlalchemy.exc.TimeoutError) for outcome in outcomes), outcomes
        assert not engine.sync_engine.pool._pool._waiters  # type: ignore[attr-defined]
        async with engine.connect() as again:
            assert (await again.exec_driver_sql("SELECT 3")).scalar() == 3


async def test_a_cancelled_waiter_leaves_the_line(database_url: str) -> None:
    async with one_connection(database_url, pool_timeout=5) as engine:
        held = await engine.connect()
        await held.exec_driver_sql("SELECT 1")
        gone = asyncio.create_task(_checkout(engine))  # a request whose client went away
        await _in_line(engine, 1)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        await held.close()  # to no one: it is idle
        pool = engine.sync_engine.pool
        assert (pool.checkedin(), pool.checkedout()) == (1, 0)  # type: ignore[attr-defined]
        async with engine.connect() as again:
            assert (await again.exec_driver_sql("SELECT 4")).scalar() == 4
