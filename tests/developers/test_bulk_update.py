"""PATCH /api/developers (batch update, one statement, all or nothing) and POST /api/developers/bulk-delete."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar
from sqlalchemy import event

from tests.client import assert_problem
from tests.database import fetch
from tests.developers.api import bulk, create, people, table


async def patch(client: httpx.AsyncClient, items: list[dict[str, Any]]) -> httpx.Response:
    return await client.patch("/api/developers", json=items, timeout=120)


async def delete(client: httpx.AsyncClient, ids: list[int]) -> httpx.Response:
    return await client.post("/api/developers/bulk-delete", json={"ids": ids})


async def seed(client: httpx.AsyncClient, n: int) -> list[dict[str, Any]]:
    return [await create(client, name=f"Dev {i}", email=f"dev{i}@x.io", specialty="seed") for i in range(n)]


async def by_id(database_url: str) -> dict[int, tuple[Any, ...]]:
    return {row[0]: row for row in await table(database_url)}


@contextmanager
def statements(app: Litestar) -> Iterator[list[tuple[str, bool]]]:
    """(SQL text, executemany) of every statement the app's engine sends while the block runs."""
    engine = app.plugins.get(SQLAlchemyPlugin).config[0].get_engine().sync_engine
    seen: list[tuple[str, bool]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, executemany))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_batch_changes_given_fields_of_given_rows(client: httpx.AsyncClient, database_url: str) -> None:
    devs = await seed(client, 5)
    before = await by_id(database_url)
    ids = [d["id"] for d in devs]
    items = [{"id": ids[0], "name": "Renamed"}, {"id": ids[1], "email": "new1@x.io", "specialty": "compilers"}]
    items.append({"id": ids[3], "name": "All", "email": "all@x.io", "specialty": "everything"})
    response = await patch(client, items)
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 3}
    after = await by_id(database_url)
    # (id, name, email, specialty, created_at, updated_at)
    expected = {ids[0]: ("Renamed", "dev0@x.io", "seed"), ids[1]: ("Dev 1", "new1@x.io", "compilers")}
    expected[ids[3]] = ("All", "all@x.io", "everything")
    for developer_id, fields in expected.items():
        assert after[developer_id][1:4] == fields
        assert after[developer_id][4] == before[developer_id][4]  # created_at kept
        assert after[developer_id][5] > before[developer_id][5]  # updated_at moved
    for untouched in (ids[2], ids[4]):
        assert after[untouched] == before[untouched]


async def test_10000_items_are_one_update(client: httpx.AsyncClient, app: Litestar, database_url: str) -> None:
    assert (await bulk(client, "ndjson", people(10_000))).status_code == 201
    ids = [row["id"] for row in await fetch(database_url, "SELECT id FROM developers ORDER BY id")]
    assert len(ids) == 10_000
    items = [{"id": i, "specialty": f"batch {i % 7}"} for i in ids]
    with statements(app) as seen:
        response = await patch(client, items)
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 10_000}
    updates = [(sql, many) for sql, many in seen if "UPDATE" in sql]
    assert len(updates) == 1, seen
    assert updates[0][1] is False  # one execution, not an executemany of 10,000
    rows = await fetch(database_url, "SELECT count(*) AS n FROM developers WHERE specialty LIKE 'batch %'")
    assert rows[0]["n"] == 10_000


async def test_unknown_ids_are_404_and_nothing_is_written(client: httpx.AsyncClient, database_url: str) -> None:
    devs = await seed(client, 2)
    before = await table(database_url)
    items = [{"id": devs[0]["id"], "name": "Changed"}, {"id": 999_999, "name": "X"}, {"id": 777, "specialty": "Y"}]
    body = assert_problem(await patch(client, items), 404)
    assert body["extra"] == [{"id": 777}, {"id": 999_999}]
    assert body["detail"].startswith("2 id(s)")
    many = [{"id": devs[1]["id"], "name": "Changed"}, *({"id": 1000 + i, "name": "X"} for i in range(25))]
    body = assert_problem(await patch(client, many), 404)
    assert body["detail"].startswith("25 id(s)")
    assert body["extra"] == [{"id": 1000 + i} for i in range(20)]  # the first 20, in id order
    assert await table(database_url) == before


async def test_email_of_another_developer_in_any_case_is_409(client: httpx.AsyncClient, database_url: str) -> None:
    await create(client, name="Ada", email="ada@x.io", specialty="s")
    bob = await create(client, name="Bob", email="bob@x.io", specialty="s")
    carol = await create(client, name="Carol", email="carol@x.io", specialty="s")
    before = await table(database_url)
    items = [{"id": carol["id"], "name": "Carol 2"}, {"id": bob["id"], "email": "ADA@x.io"}]
    body = assert_problem(await patch(client, items), 409)
    assert body["extra"] == [{"email": "ADA@x.io", "rows": [2], "reason": "taken"}]  # as the client wrote it
    assert await table(database_url) == before


async def test_two_items_setting_one_email_is_409(client: httpx.AsyncClient, database_url: str) -> None:
    devs = await seed(client, 3)
    before = await table(database_url)
    items = [{"id": devs[0]["id"], "email": "same@x.io"}, {"id": devs[2]["id"], "email": "SAME@x.io"}]
    body = assert_problem(await patch(client, items), 409)
    assert body["extra"] == [{"email": "same@x.io", "rows": [1, 2], "reason": "repeated"}]
    assert await table(database_url) == before


async def test_own_email_in_another_case_is_allowed(client: httpx.AsyncClient, database_url: str) -> None:
    ada = await create(client, name="Ada", email="ada@x.io", specialty="s")
    response = await patch(client, [{"id": ada["id"], "email": "ADA@X.io"}])
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 1}
    assert [row["email"] for row in await fetch(database_url, "SELECT email FROM developers")] == ["ADA@X.io"]


async def test_a_swap_of_emails_is_409_and_writes_nothing(client: httpx.AsyncClient, database_url: str) -> None:
    # Documented limitation: the unique index on lower(email) is checked row by row within the one UPDATE, so
    # emails cannot change hands in one batch. The answer is a clean 409, never a half-done swap.
    a = await create(client, name="A", email="a@x.io", specialty="s")
    b = await create(client, name="B", email="b@x.io", specialty="s")
    before = await table(database_url)
    response = await patch(client, [{"id": a["id"], "email": "B@x.io"}, {"id": b["id"], "email": "a@x.io"}])
    body = assert_problem(response, 409)
    assert body["extra"][0]["reason"] == "taken"
    assert body["extra"][0]["email"] in {"B@x.io", "a@x.io"}  # as the client spelled it
    assert await table(database_url) == before


async def test_duplicate_ids_or_no_changes_are_400_empty_is_200(client: httpx.AsyncClient, database_url: str) -> None:
    devs = await seed(client, 2)
    before = await table(database_url)
    a, b = devs[0]["id"], devs[1]["id"]
    items = [{"id": a, "name": "A"}, {"id": b, "name": "B"}, {"id": a, "name": "C"}]
    body = assert_problem(await patch(client, items), 400)
    assert [(e["row"], e["key"]) for e in body["extra"]] == [(3, "id")]
    assert str(a) in body["extra"][0]["message"]
    body = assert_problem(await patch(client, [{"id": a, "name": "A"}, {"id": b}]), 400)
    assert [(e["row"], e["key"]) for e in body["extra"]] == [(2, None)]
    assert await table(database_url) == before
    response = await patch(client, [])  # an empty batch is no error
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 0}
    assert await table(database_url) == before


@pytest.mark.parametrize(
    ("item", "key"),
    [
        ({"email": "nope"}, "email"),
        ({"id": 0}, "id"),
        ({"id": 2**63}, "id"),
        ({"id": -1}, "id"),
        ({"name": " "}, "name"),
        ({"specialty": "s" * 101}, "specialty"),
        ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
    ],
)
async def test_invalid_item_is_400_naming_row_and_key(
    client: httpx.AsyncClient, database_url: str, item: dict[str, Any], key: str
) -> None:
    devs = await seed(client, 2)
    before = await table(database_url)
    items = [{"id": devs[0]["id"], "name": "Fine"}, {"id": devs[1]["id"], "name": "Also fine", **item}]
    problem = assert_problem(await patch(client, items), 400)
    (error,) = problem["extra"]
    assert (error["row"], error["key"]) == (2, key)
    assert await table(database_url) == before


async def test_bulk_delete_removes_listed_rows_and_names_unknown_ids(
    client: httpx.AsyncClient, database_url: str
) -> None:
    devs = await seed(client, 5)
    before = await by_id(database_url)
    ids = [d["id"] for d in devs]
    response = await delete(client, [ids[3], 999, ids[1], ids[3], 42, 999])
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 2, "not_found": [42, 999]}
    after = await by_id(database_url)
    assert after == {i: before[i] for i in (ids[0], ids[2], ids[4])}
    response = await delete(client, [])
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 0, "not_found": []}
    assert await by_id(database_url) == after


@pytest.mark.parametrize("bad", [0, -1, 2**63])
async def test_bulk_delete_rejects_invalid_ids(client: httpx.AsyncClient, database_url: str, bad: int) -> None:
    devs = await seed(client, 2)
    before = await table(database_url)
    assert_problem(await delete(client, [devs[0]["id"], bad]), 400)
    assert await table(database_url) == before
