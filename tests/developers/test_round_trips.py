"""What the database receives, counted at the wire: one round trip per hot read, three per single-row write (its
declared isolation level inside the BEGIN, not a statement of its own), four per export, and no connection opened
once the pool is warm, however many clients come at once (default settings)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.app import create_app
from service.core.settings import Settings
from tests.accounts.api import account
from tests.client import TEST_SECRET, serve
from tests.database import run_sql
from tests.pgwire import counting_proxy

READS = [
    "/api/developers/1",
    "/api/developers/999999",  # none: still one round trip, and a 404
    "/api/developers?limit=2",
    "/api/developers?specialty=rt&limit=2",
]


@pytest.fixture(autouse=True)
async def rows(database_url: str) -> None:
    await run_sql(
        database_url,
        "TRUNCATE developers RESTART IDENTITY",
        "INSERT INTO developers (name, email, specialty) "
        "SELECT 'Dev ' || n, 'dev' || n || '@rt.io', 'rt' FROM generate_series(1, 5) AS n",
    )


async def test_a_hot_read_is_one_round_trip(database_url: str) -> None:
    async with counting_proxy(database_url) as wire:
        app = create_app(Settings(database_url=wire.url, secret_key=TEST_SECRET, db_pool_size=1))
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


async def test_a_single_row_write_is_three_round_trips(database_url: str) -> None:
    async with counting_proxy(database_url) as wire:
        app = create_app(Settings(database_url=wire.url, secret_key=TEST_SECRET, db_pool_size=1))
        async with serve(app, "editor") as client:
            for i in range(3):  # the first prepares the INSERT
                before = wire.round_trips
                body = {"name": f"W {i}", "email": f"w{i}@rt.io", "specialty": "rt"}
                assert (await client.post("/api/developers", json=body)).status_code == 201
            # BEGIN, INSERT ... RETURNING, COMMIT
            assert wire.round_trips - before == 3, wire.statements[-6:]
            # The level the write declares (service.db.isolation) is part of the BEGIN; the prepared INSERT sends
            # no SQL text again.
            assert wire.statements[-2:] == ["BEGIN ISOLATION LEVEL READ COMMITTED;", "COMMIT;"]


async def test_a_serializable_write_declares_its_level_in_its_begin(database_url: str) -> None:
    await run_sql(database_url, "TRUNCATE users RESTART IDENTITY")
    async with counting_proxy(database_url) as wire:
        app = create_app(Settings(database_url=wire.url, secret_key=TEST_SECRET, db_pool_size=1))
        async with serve(app) as client:
            for email in ("a@rt.io", "b@rt.io"):
                await account(client, email, "admin")
            for role in ("editor", "admin", "editor"):  # the first prepares the statements
                before = wire.round_trips
                assert (await client.patch("/api/users/2", json={"role": role})).status_code == 200
            # BEGIN ISOLATION LEVEL SERIALIZABLE, the active admins, UPDATE ... RETURNING, COMMIT
            assert wire.round_trips - before == 4, wire.statements[-8:]
            # (The prepared statements in between send no SQL text again.)
            assert wire.statements[-2:] == ["BEGIN ISOLATION LEVEL SERIALIZABLE;", "COMMIT;"]


async def test_an_export_is_four_round_trips(database_url: str) -> None:
    async with counting_proxy(database_url) as wire:
        app = create_app(Settings(database_url=wire.url, secret_key=TEST_SECRET, db_pool_size=1))
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
