"""Limits of the bulk routes (BULK_MAX_ROWS, BULK_MAX_BYTES, the single-row body cap) and a client that goes away."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar
from sqlalchemy.exc import DBAPIError

from service.app import create_app
from service.developers.bulk.parsers import CHUNK_ROWS
from tests.client import TEST_SECRET, assert_problem, serve, token
from tests.database import empty, fetch
from tests.developers.api import FORMATS, bulk, create, encode, people, table
from tests.pgbouncer import app_settings
from tests.polling import until
from tests.postgresql_only import ASYNCPG, IDLE_TIMEOUT_MS, SESSIONS
from tests.processes import DEVDIR, environment, free_port, wait_ready

MAX_ROWS, MAX_BYTES = 100, 10_000


@pytest.fixture
async def limited(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that takes at most 100 rows and 10,000 bytes a request."""
    await empty(database_url, "developers")
    settings = app_settings(
        database_url,
        db_pool_size=5,
        db_max_overflow=5,
        bulk_max_rows=MAX_ROWS,
        bulk_max_bytes=MAX_BYTES,
    )
    async with serve(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize("fmt", FORMATS)
async def test_one_row_over_the_limit_is_413_and_the_limit_itself_is_fine(
    limited: httpx.AsyncClient, database_url: str, fmt: str
) -> None:
    assert len(encode(fmt, people(MAX_ROWS + 1))) < MAX_BYTES  # so the row count, not the size, decides
    body = assert_problem(await bulk(limited, fmt, people(MAX_ROWS + 1)), 413)
    assert str(MAX_ROWS) in body["detail"]
    assert await table(database_url) == []
    response = await bulk(limited, fmt, people(MAX_ROWS))
    assert response.status_code == 201, response.text
    assert response.json()["created"] == MAX_ROWS


async def test_batch_update_and_delete_of_one_item_too_many_are_413(
    limited: httpx.AsyncClient, database_url: str
) -> None:
    assert (await bulk(limited, "ndjson", people(MAX_ROWS))).status_code == 201
    await create(limited, name="One more", email="more@x.io", specialty="s")
    before = await table(database_url)
    ids = [row[0] for row in before]
    assert len(ids) == MAX_ROWS + 1
    assert_problem(await limited.patch("/api/developers", json=[{"id": i, "name": "New"} for i in ids]), 413)
    assert_problem(await limited.post("/api/developers/bulk-delete", json={"ids": ids}), 413)
    assert await table(database_url) == before
    response = await limited.patch("/api/developers", json=[{"id": i, "specialty": "new"} for i in ids[:MAX_ROWS]])
    assert response.json() == {"updated": MAX_ROWS}
    response = await limited.post("/api/developers/bulk-delete", json={"ids": ids[:MAX_ROWS]})
    assert response.json() == {"deleted": MAX_ROWS, "not_found": []}
    assert [row[0] for row in await table(database_url)] == ids[MAX_ROWS:]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_body_over_max_bytes_is_413_naming_the_limit(
    limited: httpx.AsyncClient, database_url: str, fmt: str, streamed: bool
) -> None:
    rows = [{"name": "N" * 200, "email": f"long{i}@x.io", "specialty": "s" * 100} for i in range(60)]
    content = encode(fmt, rows)
    assert len(content) > MAX_BYTES

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 1000):
            yield content[start : start + 1000]

    response = await limited.post(
        "/api/developers/bulk",
        content=pieces() if streamed else content,
        headers={"content-type": {"json": "application/json", "ndjson": "application/x-ndjson"}.get(fmt, "text/csv")},
    )
    body = assert_problem(response, 413)
    assert str(MAX_BYTES) in body["detail"]
    assert await table(database_url) == []


async def test_batch_bodies_over_max_bytes_are_413(limited: httpx.AsyncClient, database_url: str) -> None:
    await create(limited, name="Ada", email="ada@x.io", specialty="s")
    before = await table(database_url)
    items = [{"id": before[0][0], "name": "N" * 200}] * 60  # under 100 items, over 10,000 bytes
    assert_problem(await limited.patch("/api/developers", json=items), 413)
    assert_problem(await limited.post("/api/developers/bulk-delete", json={"ids": list(range(1, 100)) * 30}), 413)
    assert await table(database_url) == before


async def test_single_row_routes_cap_bodies_at_64_kib(client: httpx.AsyncClient, database_url: str) -> None:
    # The default BULK_MAX_BYTES (256 MiB) is on the router; the single-row routes set their own, lower, limit.
    ada = await create(client, name="Ada", email="ada@x.io", specialty="s")
    before = await table(database_url)
    big = {"name": "x" * 70_000, "email": "big@x.io", "specialty": "s"}
    assert_problem(await client.post("/api/developers", json=big), 413)
    assert_problem(await client.patch(f"/api/developers/{ada['id']}", json={"name": "x" * 70_000}), 413)
    # Just under the cap, the same body is judged on its content: a 400 for the name's length.
    assert_problem(await client.post("/api/developers", json={**big, "name": "x" * 60_000}), 400)
    assert await table(database_url) == before


@ASYNCPG
async def test_client_gone_mid_stream_writes_nothing_and_frees_the_connection(
    client: httpx.AsyncClient, app: Litestar, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    copied: list[tuple[str, int]] = []  # (table, rows) of each COPY: a spy, the COPY still runs
    copy = asyncpg.Connection.copy_records_to_table

    async def counted_copy(self: asyncpg.Connection, table_name: str, **kwargs: Any) -> Any:
        copied.append((table_name, len(kwargs["records"])))
        return await copy(self, table_name, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "copy_records_to_table", counted_copy)
    rows = people(CHUNK_ROWS * 5 // 2)  # two chunks complete, half a chunk still being parsed
    step = CHUNK_ROWS // 4
    messages = [encode("ndjson", rows[start : start + step]) for start in range(0, len(rows), step)]
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        if received <= len(messages):
            return {"type": "http.request", "body": messages[received - 1], "more_body": True}
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/developers/bulk",
        "raw_path": b"/api/developers/bulk",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/x-ndjson"),
            (b"authorization", f"Bearer {token('editor')}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)  # type: ignore[arg-type]

    assert received == len(messages) + 1  # every message was read, then the disconnect
    assert sum(n for _, n in copied) >= CHUNK_ROWS, copied  # rows were really COPYed before the client went away
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [400]
    assert await fetch(database_url, "SELECT * FROM developers") == []
    # The connection went back to the pool clean: the next import creates its staging table again.
    assert (await bulk(client, "ndjson", people(3))).status_code == 201
    await create(client, name="After", email="after@x.io", specialty="s")
    assert len(await table(database_url)) == 4
    engine = app.plugins.get(SQLAlchemyPlugin).config[0].get_engine()
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    body = msgspec.json.decode(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert "disconnected" in body["detail"]


@pytest.mark.slow  # runs `devdir run` as a process
@SESSIONS
def test_client_gone_over_a_real_socket_writes_nothing(database_url: str) -> None:
    """The same through `devdir run` (granian): the server's own disconnect reaches the handler, which rolls back."""
    in_transaction = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'devdir' AND state = 'idle in transaction'"
    )

    def wait_for(count: int) -> None:  # devdir connections idle inside an open transaction
        async def idle_in_transaction() -> bool:
            return bool((await fetch(database_url, in_transaction))[0][0] == count)

        asyncio.run(until(idle_in_transaction, f"{count} connection(s) idle in transaction"))

    asyncio.run(empty(database_url, "developers"))
    port = free_port()
    server = subprocess.Popen(
        [DEVDIR, "run", "--port", str(port)],
        env=environment(DATABASE_URL=database_url, SECRET_KEY=TEST_SECRET),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    bearer = f"Bearer {token('editor')}"
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        body = encode("ndjson", people(25_000))
        head = (
            "POST /api/developers/bulk HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
            f"Authorization: {bearer}\r\n"
        )
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(f"{head}Content-Length: {2 * len(body)}\r\n\r\n".encode() + body)
            wait_for(1)  # rows were COPYed and the handler waits for the rest of the body
        wait_for(0)  # the socket closed: the transaction ended
        assert asyncio.run(fetch(database_url, "SELECT * FROM developers")) == []
        after = {"name": "After", "email": "after@x.io", "specialty": "s"}
        created = httpx.post(
            f"http://127.0.0.1:{port}/api/developers", json=after, headers={"Authorization": bearer}, timeout=10
        )
        assert created.status_code == 201
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode()
    assert server.returncode == 0, output


async def test_stalled_upload_is_408_and_frees_its_connection(database_url: str) -> None:
    settings = app_settings(database_url, body_idle_timeout_seconds=0.5)
    app = create_app(settings)
    await empty(database_url, "developers")
    stalled = asyncio.Event()

    async def stalling_body() -> AsyncIterator[bytes]:
        yield encode("ndjson", people(CHUNK_ROWS + 10))  # rows enough for a COPY: a connection in a transaction
        stalled.set()
        await asyncio.sleep(30)  # then nothing more, long after the timeout
        yield b""

    async with serve(app, "editor") as client:
        started = time.monotonic()
        response = await client.post(
            "/api/developers/bulk", content=stalling_body(), headers={"content-type": "application/x-ndjson"}
        )
        elapsed = time.monotonic() - started
        assert stalled.is_set()
        body = assert_problem(response, 408)
        assert "BODY_IDLE_TIMEOUT_SECONDS" in body["detail"]
        assert elapsed < 10
        engine = app.plugins.get(SQLAlchemyPlugin).config[0].get_engine()
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert await fetch(database_url, "SELECT * FROM developers") == []
        # The same for a single-row body that stops half way.

        async def half_a_row() -> AsyncIterator[bytes]:
            yield b'{"name": "Slow", '
            await asyncio.sleep(30)
            yield b"}"

        response = await client.post(
            "/api/developers", content=half_a_row(), headers={"content-type": "application/json"}
        )
        assert_problem(response, 408)


@IDLE_TIMEOUT_MS
async def test_sessions_idle_in_a_transaction_are_ended_by_postgresql(database_url: str) -> None:
    settings = app_settings(database_url, db_idle_in_transaction_timeout_ms=300)
    app = create_app(settings)
    engine = app.plugins.get(SQLAlchemyPlugin).config[0].get_engine()
    try:
        async with engine.connect() as connection:
            shown = await connection.exec_driver_sql("SHOW idle_in_transaction_session_timeout")
            assert shown.scalar() == "300ms"
            await asyncio.sleep(1)  # idle inside the transaction SQLAlchemy began: PostgreSQL ends the session
            with pytest.raises(DBAPIError):
                await connection.exec_driver_sql("SELECT 1")
    finally:
        await engine.dispose()
