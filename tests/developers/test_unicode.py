"""Text is kept in Unicode NFC: an email typed composed or decomposed is one email, on every write path."""

from __future__ import annotations

import httpx
import pytest

from tests.client import assert_problem
from tests.database import fetch
from tests.developers.api import FORMATS, bulk, create

COMPOSED = "caf\u00e9@x.io"  # é as one code point
DECOMPOSED = "cafe\u0301@x.io"  # e and a combining acute accent: the same text to a reader


async def stored(database_url: str) -> list[tuple[str, str, str]]:
    rows = await fetch(database_url, "SELECT name, email, specialty FROM developers ORDER BY id")
    return [tuple(row) for row in rows]


async def test_single_rows_are_stored_in_nfc_and_collide(client: httpx.AsyncClient, database_url: str) -> None:
    first = await create(client, name="Zoe\u0308", email=DECOMPOSED, specialty="pa\u0302tisserie")
    assert (first["name"], first["email"], first["specialty"]) == ("Zo\u00eb", COMPOSED, "p\u00e2tisserie")
    assert await stored(database_url) == [("Zo\u00eb", COMPOSED, "p\u00e2tisserie")]
    taken = assert_problem(
        await client.post("/api/developers", json={"name": "A", "email": COMPOSED, "specialty": "s"}), 409
    )
    assert taken["detail"]
    other = await create(client, name="B", email="b@x.io", specialty="s")
    assert_problem(await client.patch(f"/api/developers/{other['id']}", json={"email": DECOMPOSED}), 409)
    batch = [{"id": other["id"], "email": DECOMPOSED.upper()}]
    assert_problem(await client.patch("/api/developers", json=batch), 409)
    # Asked for in either form, the specialty finds the developer.
    for specialty in ("p\u00e2tisserie", "pa\u0302tisserie"):
        listed = await client.get("/api/developers", params={"specialty": specialty})
        assert [d["email"] for d in listed.json()["items"]] == [COMPOSED]


async def test_two_items_of_a_batch_setting_one_email_in_two_forms_collide(client: httpx.AsyncClient) -> None:
    a = await create(client, name="A", email="a@x.io", specialty="s")
    b = await create(client, name="B", email="b@x.io", specialty="s")
    batch = [{"id": a["id"], "email": COMPOSED}, {"id": b["id"], "email": DECOMPOSED}]
    assert_problem(await client.patch("/api/developers", json=batch), 409)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_bulk_imports_are_stored_in_nfc_and_collide(
    client: httpx.AsyncClient, database_url: str, fmt: str
) -> None:
    created = await bulk(client, fmt, [{"name": "Zoe\u0308", "email": DECOMPOSED, "specialty": "s"}])
    assert created.status_code == 201, created.text
    assert await stored(database_url) == [("Zo\u00eb", COMPOSED, "s")]
    assert_problem(await bulk(client, fmt, [{"name": "A", "email": COMPOSED, "specialty": "s"}]), 409)
    repeated = [
        {"name": "A", "email": "new\u00e9@x.io", "specialty": "s"},
        {"name": "B", "email": "newe\u0301@x.io", "specialty": "s"},
    ]
    problem = assert_problem(await bulk(client, fmt, repeated), 409)
    assert problem["extra"][0]["rows"] == [1, 2]
    assert len(await stored(database_url)) == 1


async def test_text_longer_than_its_limit_once_in_nfc_is_400(client: httpx.AsyncClient) -> None:
    # U+0958 (Devanagari qa) has no composed form in NFC: it becomes two code points, so 200 become 400.
    body = {"name": "\u0958" * 200, "email": "a@x.io", "specialty": "s"}
    problem = assert_problem(await client.post("/api/developers", json=body), 400)
    assert problem["extra"][0]["key"] == "name"
    assert_problem(await bulk(client, "ndjson", [body]), 400)
