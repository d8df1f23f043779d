"""Listing: specialty filter, (name, id) order, keyset pages that neither lose nor repeat rows."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from service.developers import keyset
from tests.client import assert_problem
from tests.database import run_sql
from tests.developers.api import create


async def seed(database_url: str, rows: list[tuple[str, str, str]]) -> None:
    values = ",".join(f"('{n}', '{e}', '{s}')" for n, e, s in rows)
    await run_sql(database_url, f"INSERT INTO developers (name, email, specialty) VALUES {values}")


async def pages(client: httpx.AsyncClient, query: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = await client.get(f"/api/developers?{query}" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


async def test_filter_by_specialty_in_name_then_id_order(client: httpx.AsyncClient) -> None:
    for name, email, specialty in [
        ("Zoe", "z@x.io", "rust"),
        ("Ann", "a1@x.io", "rust"),
        ("Ann", "a2@x.io", "rust"),  # same name: id breaks the tie
        ("Bob", "b@x.io", "go"),
    ]:
        await create(client, name=name, email=email, specialty=specialty)
    rust = (await client.get("/api/developers?specialty=rust")).json()
    assert [(d["name"], d["email"]) for d in rust["items"]] == [
        ("Ann", "a1@x.io"),
        ("Ann", "a2@x.io"),
        ("Zoe", "z@x.io"),
    ]
    assert rust["next_cursor"] is None
    everyone = (await client.get("/api/developers")).json()["items"]
    assert [d["name"] for d in everyone] == ["Ann", "Ann", "Bob", "Zoe"]
    assert (await client.get("/api/developers?specialty=cobol")).json() == {"items": [], "next_cursor": None}


async def test_default_limit_is_100_and_pages_end_exactly(client: httpx.AsyncClient, database_url: str) -> None:
    await seed(database_url, [(f"Dev {i:03d}", f"d{i}@x.io", "s") for i in range(200)])
    first = (await client.get("/api/developers")).json()
    assert len(first["items"]) == 100
    second = (await client.get(f"/api/developers?cursor={first['next_cursor']}")).json()
    assert len(second["items"]) == 100
    assert second["next_cursor"] is None  # exactly 200 rows: no empty third page


async def test_keyset_pages_through_250_rows_with_inserts_between_pages(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await seed(database_url, [(f"Dev {i:04d}", f"d{i}@x.io", "go" if i % 2 else "py") for i in range(500)])
    # 250 "go" rows; page by 40, inserting rows before and after the cursor between pages.
    seen: list[dict[str, Any]] = []
    cursor = None
    for page_number in range(100):
        query = "specialty=go&limit=40" + (f"&cursor={cursor}" if cursor else "")
        body = (await client.get(f"/api/developers?{query}")).json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        await seed(
            database_url,
            [
                (f"Dev 0000-{page_number}", f"early{page_number}@x.io", "go"),  # sorts before the cursor
                (f"Dev 9999-{page_number}", f"late{page_number}@x.io", "go"),  # sorts after it
                (f"Dev 0500-{page_number}", f"other{page_number}@x.io", "py"),  # another specialty
            ],
        )
    keys = [(d["name"], d["id"]) for d in seen]
    assert keys == sorted(keys), "pages are in (name, id) order"
    assert len(set(keys)) == len(keys), "no row repeated"
    names = {d["name"] for d in seen}
    assert {f"Dev {i:04d}" for i in range(1, 500, 2)} <= names, "no original row lost"
    assert all(d["specialty"] == "go" for d in seen)
    assert not any(n.startswith("Dev 0000-") for n in names), "rows inserted behind the cursor are not shown"
    assert sum(n.startswith("Dev 9999-") for n in names) == page_number, "rows inserted ahead of it are"


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "specialty=", "specialty=" + "s" * 101])
async def test_bad_parameters_are_400(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/api/developers?{query}")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "bm90LWpzb24",  # base64 of "not-json"
        keyset.encode("x", 1)[:-3],  # truncated
        "W10",  # []
        keyset.encode("x\x00", 1),
        keyset.encode("x", 0),
        keyset.encode("x", 2**63),
        "A" * 5000,
    ],
)
async def test_forged_cursors_are_400(client: httpx.AsyncClient, cursor: str) -> None:
    response = await client.get("/api/developers", params={"cursor": cursor})
    assert response.status_code == 400, response.text
    assert "cursor" in response.text


async def test_cursor_round_trip() -> None:
    for name in ["Ann", "Zoë Ñandú", "quote\"'and,comma", "x" * 200, "\U0010ffff\ud7ff\ue000\x01 \U0001f9d1"]:
        assert keyset.decode(keyset.encode(name, 42)) == (name, 42)


async def test_every_cursor_of_the_documented_form_is_a_place_to_page_from(client: httpx.AsyncClient) -> None:
    # `cursor=0` was of the documented form, and 400: now the document says what a cursor is, and each one is a
    # place in (name, id) order, whoever wrote it.
    for i, name in enumerate(["Ann", "Bob", "Cy"]):
        await create(client, name=name, email=f"{i}@x.io", specialty="s")
    pages = {".1": ["Ann", "Bob", "Cy"], "426f62.1": ["Bob", "Cy"], "426f62.2": ["Cy"], "4379.3": []}  # "Bob", "Cy"
    for cursor, names in pages.items():
        assert re.match(keyset.PATTERN, cursor)
        response = await client.get("/api/developers", params={"cursor": cursor})
        assert [item["name"] for item in response.json()["items"]] == names, cursor
    not_cursors = ["0", "41", "4.1", "41.0", "41.01", "41.1\n", "4G.1", "41.-1", f"41.{2**63}"]
    not_cursors += ["c3.1", "00.1", "eda080.1", "c0af.1"]  # a cut character, NUL, a surrogate, an overlong form
    for cursor in not_cursors:
        assert not re.match(keyset.PATTERN, cursor), cursor
        problem = assert_problem(await client.get("/api/developers", params={"cursor": cursor}), 400)
        assert problem["extra"][0]["key"] == "cursor", cursor


async def test_the_page_after_the_longest_name_is_reachable(client: httpx.AsyncClient) -> None:
    # Characters of four UTF-8 bytes each: the longest cursor a valid name can make.
    longest = "\U0001f9d1" * 200
    first = await create(client, name=longest, email="a@x.io", specialty="s")
    second = await create(client, name=longest, email="b@x.io", specialty="s")
    page = (await client.get("/api/developers?limit=1")).json()
    assert [item["id"] for item in page["items"]] == [first["id"]]
    cursor = page["next_cursor"]
    assert len(cursor) == keyset.MAX_LENGTH - len(str(2**63 - 1)) + len(str(first["id"]))
    following = await client.get("/api/developers", params={"limit": 1, "cursor": cursor})
    assert following.status_code == 200, following.text
    assert [item["id"] for item in following.json()["items"]] == [second["id"]]


@pytest.mark.parametrize("cursor", ["", "=", "a b", "A" * (keyset.MAX_LENGTH + 1)])
async def test_cursors_outside_the_documented_form_are_400(client: httpx.AsyncClient, cursor: str) -> None:
    response = await client.get("/api/developers", params={"cursor": cursor})
    assert response.status_code == 400, response.text
    assert response.json()["extra"][0]["key"] == "cursor"
