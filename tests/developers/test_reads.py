"""The hot reads' JSON (written by PostgreSQL itself, by msgspec on MariaDB) is byte for byte what msgspec writes
for the same rows, and a connection the server ended while it sat in the pool costs a read nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import msgspec
import pytest
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar

from service.developers.keyset import encode
from service.developers.schemas import Developer, DeveloperPage
from tests.database import empty, fetch, insert
from tests.postgresql_only import SESSIONS

NAMES = [
    'Quote " and backslash \\ and slash /',
    "Tab\tnew line\nand \x01 control \x1f characters, DEL \x7f",
    "Ünïcödé ✓, emoji 🧑‍💻, line separator \u2028, <b>&amp;</b>",
    "Plain",
]


@pytest.fixture
async def rows(database_url: str) -> list[Developer]:
    await empty(database_url, "developers")
    now = datetime.now(UTC)
    for i, name in enumerate(NAMES):
        # Whole seconds for one row, microseconds for the others: msgspec writes the two differently.
        stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) if i == 0 else now.replace(microsecond=now.microsecond or 1)
        row = {"name": name, "email": f"r{i}@x.io", "specialty": "reads", "created_at": stamp, "updated_at": stamp}
        await insert(database_url, "developers", [row])
    records = await fetch(database_url, "SELECT * FROM developers ORDER BY name, id")
    return [Developer(**{field: record[field] for field in Developer.__struct_fields__}) for record in records]


async def test_a_developer_is_what_msgspec_would_write(client: httpx.AsyncClient, rows: list[Developer]) -> None:
    for developer in rows:
        response = await client.get(f"/api/developers/{developer.id}")
        assert response.headers["content-type"] == "application/json"
        assert response.content == msgspec.json.encode(developer)


async def test_a_page_is_what_msgspec_would_write(client: httpx.AsyncClient, rows: list[Developer]) -> None:
    first = await client.get("/api/developers", params={"specialty": "reads", "limit": 3})
    expected = DeveloperPage(items=rows[:3], next_cursor=encode(rows[2].name, rows[2].id))
    assert first.content == msgspec.json.encode(expected)
    rest = await client.get("/api/developers", params={"limit": 3, "cursor": expected.next_cursor})
    assert rest.content == msgspec.json.encode(DeveloperPage(items=rows[3:], next_cursor=None))
    empty = await client.get("/api/developers", params={"specialty": "nobody"})
    assert empty.content == b'{"items":[],"next_cursor":null}'


@SESSIONS
async def test_a_connection_ended_in_the_pool_is_replaced_without_an_error(
    client: httpx.AsyncClient, app: Litestar, database_url: str, rows: list[Developer]
) -> None:
    path = f"/api/developers/{rows[0].id}"
    assert (await client.get(path)).status_code == 200  # a connection now waits in the pool
    engine = app.plugins.get(SQLAlchemyPlugin).config[0].get_engine()
    idle = engine.sync_engine.pool.checkedin()  # type: ignore[attr-defined]
    assert idle >= 1
    ended = await fetch(
        database_url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = 'devdir'",
    )
    assert ended[0][0] >= 1
    for _ in range(2 * idle):  # every pooled connection was ended: each read still answers
        response = await client.get(path)
        assert response.status_code == 200, response.text
        assert (await client.get("/api/developers?limit=1")).status_code == 200
