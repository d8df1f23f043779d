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


# Each makes an email read as another, or two emails read the same: U+202E RIGHT-TO-LEFT OVERRIDE, U+200D ZERO
# WIDTH JOINER, U+200B ZERO WIDTH SPACE, U+FEFF ZERO WIDTH NO-BREAK SPACE, U+00AD SOFT HYPHEN, U+E0041 TAG LATIN
# CAPITAL LETTER A.
INVISIBLE = ["\u202e", "\u200d", "\u200b", "\ufeff", "\u00ad", "\U000e0041"]


@pytest.mark.parametrize("character", INVISIBLE)
async def test_an_email_with_an_invisible_character_is_400_on_every_write_path(
    client: httpx.AsyncClient, database_url: str, character: str
) -> None:
    email = f"ad{character}a@example.com"
    body = {"name": "Ada", "email": email, "specialty": "math"}
    problem = assert_problem(await client.post("/api/developers", json=body), 400)
    assert problem["extra"][0]["key"] == "email"
    assert "invisible" in problem["extra"][0]["message"]
    for fmt in FORMATS:
        assert_problem(await bulk(client, fmt, [body]), 400)
    ada = await create(client, name="Ada", email="ada@example.com", specialty="math")
    assert_problem(await client.patch(f"/api/developers/{ada['id']}", json={"email": email}), 400)
    assert_problem(await client.patch("/api/developers", json=[{"id": ada["id"], "email": email}]), 400)
    account = {"email": email, "password": "a password long enough", "role": "viewer"}
    assert_problem(await client.post("/api/users", json=account), 400)
    assert await stored(database_url) == [("Ada", "ada@example.com", "math")]


@pytest.mark.parametrize(
    "name",
    [
        "\u202eecalevoL adA",  # RIGHT-TO-LEFT OVERRIDE: displayed reversed, and everything after it
        "Ada \u2066Lovelace",  # LEFT-TO-RIGHT ISOLATE
        "\u200b",  # nothing visible at all
        "\u200d\u2060",
    ],
)
async def test_a_name_that_reorders_the_display_or_shows_nothing_is_400(client: httpx.AsyncClient, name: str) -> None:
    for field in ("name", "specialty"):
        body = {"name": "Ada", "email": "ada@example.com", "specialty": "math"} | {field: name}
        assert assert_problem(await client.post("/api/developers", json=body), 400)["extra"][0]["key"] == field


async def test_names_keep_the_joiners_writing_needs(client: httpx.AsyncClient) -> None:
    # A zero-width non-joiner spells Persian; a joiner builds an emoji; a right-to-left mark places punctuation.
    for i, name in enumerate(
        ["\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "Ada \U0001f9d1\u200d\U0001f4bb", "\u05d0\u200f!"]
    ):
        assert (await create(client, name=name, email=f"n{i}@example.com", specialty=name))["name"] == name
