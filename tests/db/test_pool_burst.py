"""Far more requests at once than the pool has connections: each is served or answered the documented 503 (all
connections busy, Retry-After), nothing else, and none is left waiting or holding a connection afterwards.

Which requests get which answer depends on the machine's speed, so only the set of answers is asserted: at least
one request is served (the first checkouts find the pool empty and open its connections without waiting).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin

from service.app import create_app
from tests.client import assert_problem, serve
from tests.database import empty, run_sql
from tests.pgbouncer import app_settings

REQUESTS = 512


def _request(client: httpx.AsyncClient, n: int) -> asyncio.Task[httpx.Response]:
    """The two hot reads (the pool's own connection, no session), and a write (a session and a transaction)."""
    match n % 8:
        case 0:
            body = {"name": f"Burst {n}", "email": f"burst{n}@example.com", "specialty": "s"}
            return asyncio.create_task(client.post("/api/developers", json=body))
        case 1:
            return asyncio.create_task(client.get("/api/developers", params={"limit": 5}))
        case _:
            return asyncio.create_task(client.get("/api/developers/1"))


# A timeout that many waits outrun, so that waits end both ways (a connection handed over, the deadline), and one
# that none should.
@pytest.mark.parametrize("pool_timeout", [0.3, 10.0])
async def test_512_requests_on_two_connections_are_served_or_503(database_url: str, pool_timeout: float) -> None:
    await empty(database_url, "developers")
    await run_sql(
        database_url, "INSERT INTO developers (name, email, specialty) VALUES ('Ada', 'ada@example.com', 's')"
    )
    settings = app_settings(
        database_url,
        db_pool_size=2,
        db_max_overflow=0,
        db_pool_timeout=pool_timeout,
    )
    app = create_app(settings)
    async with serve(app) as client:
        responses = await asyncio.gather(*(_request(client, n) for n in range(REQUESTS)))
        statuses = Counter(response.status_code for response in responses)
        assert set(statuses) <= {200, 201, 503}, statuses
        assert statuses[200] + statuses[201] >= 1, statuses
        for response in responses:
            if response.status_code == 503:
                assert response.headers["retry-after"] == "1"
                assert "busy" in assert_problem(response, 503)["detail"]
        pool = app.plugins.get(SQLAlchemyPlugin).config[0].get_engine().sync_engine.pool
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
        assert not [waiter for _, waiter in pool._pool._waiters if not waiter.done()]  # type: ignore[attr-defined]
        # Every write answered 201 was committed; none answered 503 was.
        listed = await client.get("/api/developers", params={"limit": 100, "specialty": "s"})
        assert listed.status_code == 200
        written = {item["email"] for item in listed.json()["items"]} - {"ada@example.com"}
        created = {response.json()["email"] for response in responses if response.status_code == 201}
        assert written == created
