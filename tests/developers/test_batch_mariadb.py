"""PATCH /api/developers (batch update) and POST /api/developers/bulk-delete on MariaDB: the same answers as on
PostgreSQL (404, 412, 409 naming the rows, version + 1), all or nothing, and the change feed's events."""

from __future__ import annotations

from typing import Any

import httpx

from tests.client import assert_problem
from tests.developers.mariadb_bulk import events, insert, last_event, table


async def patch(client: httpx.AsyncClient, items: list[dict[str, Any]]) -> httpx.Response:
    return await client.patch("/api/developers", json=items, timeout=120)


async def delete(client: httpx.AsyncClient, ids: list[int]) -> httpx.Response:
    return await client.post("/api/developers/bulk-delete", json={"ids": ids})


async def seed(url: str, n: int) -> list[int]:
    return await insert(url, *((f"Dev {i}", f"dev{i}@x.io", "seed") for i in range(n)))


async def test_batch_changes_given_fields_and_versions(mariadb_client: httpx.AsyncClient, mariadb_url: str) -> None:
    ids = await seed(mariadb_url, 5)
    before = {row[0]: row for row in await table(mariadb_url)}
    start = await last_event(mariadb_url)
    items = [
        {"id": ids[0], "name": "Renamed"},
        {"id": ids[1], "email": "new1@x.io", "specialty": "compilers", "if_match": f'"{ids[1]}.1"'},
        {"id": ids[3], "name": "All", "email": "all@x.io", "specialty": "everything"},
    ]
    response = await patch(mariadb_client, items)
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 3}
    after = {row[0]: row for row in await table(mariadb_url)}
    assert after[ids[0]][1:4] == ("Renamed", "dev0@x.io", "seed")
    assert after[ids[1]][1:4] == ("Dev 1", "new1@x.io", "compilers")
    assert after[ids[3]][1:4] == ("All", "all@x.io", "everything")
    for changed in (ids[0], ids[1], ids[3]):
        assert after[changed][5] == 2
        assert after[changed][4] > before[changed][4]  # updated_at
    assert after[ids[2]] == before[ids[2]]
    assert after[ids[4]] == before[ids[4]]
    (event,) = await events(mariadb_url, start)
    assert event["op"] == "bulk"
    assert event["bulk"] == {
        "operation": "updated",
        "count": 3,
        "first_id": ids[0],
        "last_id": ids[3],
        "ids": [ids[0], ids[1], ids[3]],
        "specialties": ["compilers", "everything", "seed"],
    }


async def test_one_item_is_an_updated_event(mariadb_client: httpx.AsyncClient, mariadb_url: str) -> None:
    (ada,) = await insert(mariadb_url, ("Ada", "ada@x.io", "maths"))
    start = await last_event(mariadb_url)
    assert (await patch(mariadb_client, [{"id": ada, "specialty": "engines"}])).json() == {"updated": 1}
    (event,) = await events(mariadb_url, start)
    assert (event["op"], event["developer_id"], event["specialty"], event["specialties"]) == (
        "updated",
        ada,
        "engines",
        ["engines", "maths"],
    )
    assert (event["developer"]["name"], event["developer"]["version"]) == ("Ada", 2)


async def test_unknown_ids_are_404_and_nothing_is_written(mariadb_client: httpx.AsyncClient, mariadb_url: str) -> None:
    ids = await seed(mariadb_url, 2)
    before, start = await table(mariadb_url), await last_event(mariadb_url)
    items = [{"id": ids[0], "name": "Changed"}, {"id": 999_999, "name": "X"}, {"id": 777, "specialty": "Y"}]
    body = assert_problem(await patch(mariadb_client, items), 404)
    assert body["extra"] == [{"id": 777}, {"id": 999_999}]
    assert body["detail"].startswith("2 id(s)")
    many = [{"id": ids[1], "name": "Changed"}, *({"id": 1000 + i, "name": "X"} for i in range(25))]
    body = assert_problem(await patch(mariadb_client, many), 404)
    assert body["detail"].startswith("25 id(s)")
    assert body["extra"] == [{"id": 1000 + i} for i in range(20)]  # the first 20, in id order
    assert await table(mariadb_url) == before
    assert await last_event(mariadb_url) == start


async def test_stale_versions_are_412(mariadb_client: httpx.AsyncClient, mariadb_url: str) -> None:
    ids = await seed(mariadb_url, 3)
    before = await table(mariadb_url)
    items = [
        {"id": ids[0], "name": "A", "if_match": f'"{ids[0]}.1"'},
        {"id": ids[1], "name": "B", "if_match": f'"{ids[1]}.2"'},  # one ahead
        {"id": ids[2], "name": "C", "if_match": f'"{ids[2]}.0"'},
    ]
    body = assert_problem(await patch(mariadb_client, items), 412)
    assert body["extra"] == [{"id": ids[1]}, {"id": ids[2]}]
    assert await table(mariadb_url) == before
    # a missing id and a stale one: the 404 comes first
    items = [{"id": ids[0], "name": "A", "if_match": f'"{ids[0]}.9"'}, {"id": 4242, "name": "X"}]
    assert assert_problem(await patch(mariadb_client, items), 404)["extra"] == [{"id": 4242}]


async def test_email_of_another_developer_in_any_case_is_409(
    mariadb_client: httpx.AsyncClient, mariadb_url: str
) -> None:
    _, bob, carol = await insert(
        mariadb_url, ("Ada", "ada@x.io", "s"), ("Bob", "bob@x.io", "s"), ("Carol", "carol@x.io", "s")
    )
    before = await table(mariadb_url)
    items = [{"id": carol, "name": "Carol 2"}, {"id": bob, "email": "ADA@x.io"}]
    body = assert_problem(await patch(mariadb_client, items), 409)
    assert body["extra"] == [{"email": "ADA@x.io", "rows": [2], "reason": "taken"}]  # as the client wrote it
    assert await table(mariadb_url) == before
    items = [{"id": bob, "email": "same@x.io"}, {"id": carol, "email": "SAME@x.io"}]
    body = assert_problem(await patch(mariadb_client, items), 409)
    assert body["extra"] == [{"email": "same@x.io", "rows": [1, 2], "reason": "repeated"}]
    response = await patch(mariadb_client, [{"id": bob, "email": "BOB@x.io"}])  # its own email in another case
    assert response.json() == {"updated": 1}


async def test_bulk_delete_removes_listed_rows_and_names_unknown_ids(
    mariadb_client: httpx.AsyncClient, mariadb_url: str
) -> None:
    ids = await seed(mariadb_url, 4)
    start = await last_event(mariadb_url)
    response = await delete(mariadb_client, [ids[2], 999, ids[0], ids[0], 5000])
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 2, "not_found": [999, 5000]}
    assert [row[0] for row in await table(mariadb_url)] == [ids[1], ids[3]]
    (event,) = await events(mariadb_url, start)
    assert event["bulk"] == {
        "operation": "deleted",
        "count": 2,
        "first_id": ids[0],
        "last_id": ids[2],
        "ids": [ids[0], ids[2]],
        "specialties": ["seed"],
    }
    assert (await delete(mariadb_client, [ids[1]])).json() == {"deleted": 1, "not_found": []}
    (_, single) = await events(mariadb_url, start)
    assert (single["op"], single["developer_id"], single["specialty"], single["developer"]) == (
        "deleted",
        ids[1],
        "seed",
        None,
    )
