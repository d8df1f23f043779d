"""What the database receives, counted at the wire: one round trip per hot read, three per single-row write (its
declared isolation level inside the BEGIN, not a statement of its own), four per export, and no connection opened
once the pool is warm, however many clients come at once (default settings). The reads, the writes and the
export count the same behind a transaction-mode pooler (DB_POOLER=transaction): the statements are unnamed, and
each is sent with its Parse (service.db.pooler)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.app import create_app
from service.core.settings import Settings
from tests.accounts.api import account
from tests.client import TEST_SECRET, serve
from tests.database import empty, run_sql
from tests.pgwire import counting_proxy
from tests.postgresql_only import ASYNCPG

pytestmark = ASYNCPG

READS = [
    "/api/developers/1",
    "/api/developers/999999",  # none: still one round trip, and a 404
    "/api/developers?limit=2",
    "/api/developers?specialty=rt&limit=2",
]


POOLERS = ["none", "transaction"]


def wired(mode: str, wire_url: str, database_url: str) -> Settings:
    """An app on the proxy; with mode "transaction", as behind a transaction-mode pooler (the proxy in its place)."""
    if mode == "none":
        return Settings(database_url=wire_url, secret_key=TEST_SECRET, db_pool_size=1)
    return Settings(
        database_url=wire_url,
        database_direct_url=database_url,
        db_pooler="transaction",
        secret_key=TEST_SECRET,
        db_pool_size=1,
    )


def written(statements: list[str], pooler: str, *unnamed: str) -> list[str]:
    """The SQL text of a write's last round trips as a direct connection sends it: BEGIN and COMMIT. Behind a
    pooler, the statements in between (each starting with one of `unnamed`) send their text again, and the BEGIN
    carries the settings as SET LOCAL: checked here, then left out."""
    if pooler == "none":
        return statements[-2:]
    *between, commit = statements[-len(unnamed) - 1 :]
    begin = statements[-len(unnamed) - 2]
    assert [sql.split()[0] for sql in between] == list(unnamed), statements[-6:]
    level, settings = begin.split(";", 1)
    assert settings.startswith("SET LOCAL statement_timeout = "), begin
    return [f"{level};", commit]


@pytest.fixture(autouse=True)
async def rows(database_url: str) -> None:
    await run_sql(
        database_url,
        "TRUNCATE developers RESTART IDENTITY",
        "INSERT INTO developers (name, email, specialty) "
        "SELECT 'Dev ' || n, 'dev' || n || '@rt.io', 'rt' FROM generate_series(1, 5) AS n",
    )


@pytest.mark.parametrize("pooler", POOLERS)
async def test_a_hot_read_is_one_round_trip(database_url: str, pooler: str) -> None:
    async with counting_proxy(database_url) as wire:
        app = create_app(wired(pooler, wire.url, database_url))
        async with serve(app, "viewer") as client:
            for path in READS:
                await client.get(path)  # the first time on this connection prepares the statement
                before = wire.round_trips
                response = await client.get(path)
                assert response.status_code in (200, 404), response.text
                assert wire.round_trips - before == 1, (path, wire.statements[-6:])
            # The second page, from a cursor, too.
            cursor = (await client.get("/api/developers?limit=2")).json()["next_cursor"]
            await client.get("/api/developers", params={"limit": 2, "cursor": cursor})
            before = wire.round_trips
            page = await client.get("/api/developers", params={"limit": 2, "cursor": cursor})
            assert [d["id"] for d in page.json()["items"]] == [3, 4]
            assert wire.round_trips - before == 1


@pytest.mark.parametrize("pooler", POOLERS)
async def test_a_single_row_write_is_three_round_trips(database_url: str, pooler: str) -> None:
    async with counting_proxy(database_url) as wire:
        app = create_app(wired(pooler, wire.url, database_url))
        async with serve(app, "editor") as client:
            for i in range(3):  # the first prepares the INSERT
                before = wire.round_trips
                body = {"name": f"W {i}", "email": f"w{i}@rt.io", "specialty": "rt"}
                assert (await client.post("/api/developers", json=body)).status_code == 201
            # BEGIN, INSERT ... RETURNING, COMMIT
            assert wire.round_trips - before == 3, wire.statements[-6:]
            # The level the write declares (service.db.isolation) is part of the BEGIN; the prepared INSERT sends
            # no SQL text again (behind a pooler, its text rides with its Bind, and the settings with the BEGIN).
            assert written(wire.statements, pooler, "INSERT") == ["BEGIN ISOLATION LEVEL READ COMMITTED;", "COMMIT;"]


@pytest.mark.parametrize("pooler", POOLERS)
async def test_a_serializable_write_declares_its_level_in_its_begin(database_url: str, pooler: str) -> None:
    await empty(database_url, "users")
    async with counting_proxy(database_url) as wire:
        app = create_app(wired(pooler, wire.url, database_url))
        async with serve(app) as client:
            for email in ("a@rt.io", "b@rt.io"):
                await account(client, email, "admin")
            for role in ("editor", "admin", "editor"):  # the first prepares the statements
                before = wire.round_trips
                assert (await client.patch("/api/users/2", json={"role": role})).status_code == 200
            # BEGIN ISOLATION LEVEL SERIALIZABLE, the active admins, UPDATE ... RETURNING, COMMIT
            assert wire.round_trips - before == 4, wire.statements[-8:]
            # (The prepared statements in between send no SQL text again.)
            assert written(wire.statements, pooler, "SELECT", "UPDATE") == [
                "BEGIN ISOLATION LEVEL SERIALIZABLE;",
                "COMMIT;",
            ]


@pytest.mark.parametrize("pooler", POOLERS)
async def test_an_export_is_four_round_trips(database_url: str, pooler: str) -> None:
    async with counting_proxy(database_url) as wire:
        app = create_app(wired(pooler, wire.url, database_url))
        async with serve(app, "viewer") as client:
            for params in ({"format": "csv"}, {"format": "ndjson", "specialty": "rt"}):
                await client.get("/api/developers/export", params=params)  # the first prepares the snapshot's SELECT
                before = wire.round_trips
                response = await client.get("/api/developers/export", params=params)
                assert (response.status_code, response.content.count(b"\n")) == (200, 5 + (params["format"] == "csv"))
                # BEGIN, the snapshot (its SELECT sets the timeout and filter), the COPY, COMMIT
                assert wire.round_trips - before == 4, wire.statements[-6:]


async def burst(client: httpx.AsyncClient, clients: int) -> None:
    paths = [READS[i % len(READS)] for i in range(clients)]
    answers = await asyncio.gather(*(client.get(path) for path in paths))
    assert {answer.status_code for answer in answers} <= {200, 404}


async def test_no_connection_is_opened_once_the_pool_is_warm(database_url: str) -> None:
    async with counting_proxy(database_url) as wire:
        app = create_app(Settings(database_url=wire.url, secret_key=TEST_SECRET))  # the default pool
        async with serve(app, "viewer") as client:
            for clients in (32, 128, 256):
                await burst(client, clients)  # may open connections, up to the pool's size
                before = wire.connections
                await burst(client, clients)
                assert wire.connections == before, f"{wire.connections - before} connections opened at {clients}"
            assert wire.connections <= Settings().db_pool_size
            assert wire.feed_connections == 1  # the change feed's listener, outside the pool
