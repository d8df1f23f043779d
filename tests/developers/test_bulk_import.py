"""POST /api/developers/bulk (and each format's own route): the three formats, the three conflict modes, and
all-or-nothing under bad input."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.client import assert_problem
from tests.database import fetch
from tests.developers.api import FORMATS, MEDIA, ROUTES, bulk, create, encode, people, table


async def by_email(database_url: str) -> dict[str, dict[str, Any]]:
    return {row["email"].lower(): dict(row) for row in await fetch(database_url, "SELECT * FROM developers")}


@pytest.mark.parametrize("fmt", FORMATS)
async def test_import_writes_every_row(client: httpx.AsyncClient, database_url: str, fmt: str) -> None:
    response = await bulk(client, fmt, people(2500))
    assert response.status_code == 201, response.text
    assert response.json() == {"created": 2500, "updated": 0, "skipped": 0}
    rows = await fetch(database_url, "SELECT name, email, specialty FROM developers ORDER BY name")
    assert [dict(row) for row in rows] == people(2500)
    listed = (await client.get("/api/developers", params={"specialty": "imported", "limit": 3})).json()["items"]
    assert [d["name"] for d in listed] == ["Dev 000000", "Dev 000001", "Dev 000002"]


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
async def test_each_streamed_format_has_a_route_of_its_own(
    client: httpx.AsyncClient, database_url: str, fmt: str
) -> None:
    response = await bulk(client, fmt, people(1200), route=ROUTES[fmt])
    assert response.status_code == 201, response.text
    assert response.json() == {"created": 1200, "updated": 0, "skipped": 0}
    rows = await fetch(database_url, "SELECT name, email, specialty FROM developers ORDER BY name")
    assert [dict(row) for row in rows] == people(1200)
    again = await bulk(client, fmt, people(2, start=1199), "skip", route=ROUTES[fmt])
    assert again.json() == {"created": 1, "updated": 0, "skipped": 1}


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
async def test_a_formats_own_route_refuses_the_others(client: httpx.AsyncClient, database_url: str, fmt: str) -> None:
    for other in FORMATS:
        if other != fmt:
            response = await bulk(client, other, people(3), route=ROUTES[fmt])
            assert_problem(response, 415)
            assert response.headers["accept-post"] == MEDIA[fmt]
    assert await table(database_url) == []


@pytest.mark.parametrize("fmt", FORMATS)
async def test_empty_payload_writes_nothing(client: httpx.AsyncClient, database_url: str, fmt: str) -> None:
    response = await bulk(client, fmt, [])
    assert response.status_code == 201, response.text
    assert response.json() == {"created": 0, "updated": 0, "skipped": 0}
    assert await table(database_url) == []


async def test_csv_quotes_commas_newlines_unicode_bom_crlf(client: httpx.AsyncClient, database_url: str) -> None:
    body = (
        "\ufeffSpecialty,Name,EMAIL\r\n"  # a BOM, another column order, header case: all accepted
        '"compilers, parsers","Lovelace, Ada",ada@x.io\r\n'
        '"data ""science""",Zoë Ångström-Łukasiewicz,zoe@x.io\r\n'
        "\r\n"  # a blank line is no row
        '"multi\nline",岩田 聡,iwata@x.io\r\n'
    ).encode()
    response = await bulk(client, "csv", body)
    assert response.status_code == 201, response.text
    assert response.json()["created"] == 3
    rows = await fetch(database_url, "SELECT name, email, specialty FROM developers ORDER BY email")
    assert [tuple(row) for row in rows] == [
        ("Lovelace, Ada", "ada@x.io", "compilers, parsers"),
        ("岩田 聡", "iwata@x.io", "multi\nline"),
        ("Zoë Ångström-Łukasiewicz", "zoe@x.io", 'data "science"'),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_error_mode_rejects_existing_emails_case_insensitively(
    client: httpx.AsyncClient, database_url: str, fmt: str
) -> None:
    await create(client, name="Old", email="DEV3@Bulk.io", specialty="kept")
    await create(client, name="Old 2", email="dev7@bulk.io", specialty="kept")
    before = await table(database_url)
    body = assert_problem(await bulk(client, fmt, people(10)), 409)
    assert body["extra"] == [
        {"email": "dev3@bulk.io", "rows": [4], "reason": "taken"},
        {"email": "dev7@bulk.io", "rows": [8], "reason": "taken"},
    ]
    assert "nothing was written" in body["detail"]
    assert await table(database_url) == before


@pytest.mark.parametrize("fmt", FORMATS)
async def test_error_mode_rejects_emails_repeated_in_the_payload(
    client: httpx.AsyncClient, database_url: str, fmt: str
) -> None:
    payload = [*people(5), {"name": "Again", "email": "DEV1@bulk.io", "specialty": "x"}]
    body = assert_problem(await bulk(client, fmt, payload), 409)
    assert body["extra"] == [{"email": "dev1@bulk.io", "rows": [2, 6], "reason": "repeated"}]
    assert await table(database_url) == []


async def test_error_mode_names_the_first_20_conflicts(client: httpx.AsyncClient, database_url: str) -> None:
    assert (await bulk(client, "ndjson", people(30))).status_code == 201
    before = await table(database_url)
    body = assert_problem(await bulk(client, "ndjson", people(100, start=10)), 409)
    assert body["detail"].startswith("20 email(s)")
    assert [c["rows"] for c in body["extra"]] == [[n] for n in range(1, 21)]
    body = assert_problem(await bulk(client, "ndjson", people(100)), 409)
    assert body["detail"].startswith("30 email(s)")
    assert "first 20" in body["detail"]
    assert len(body["extra"]) == 20
    assert await table(database_url) == before


@pytest.mark.parametrize("fmt", FORMATS)
async def test_skip_mode_leaves_existing_rows_untouched(client: httpx.AsyncClient, database_url: str, fmt: str) -> None:
    kept = await create(client, name="Original", email="Dev2@BULK.io", specialty="kept")
    payload = [*people(4), {"name": "Second Ada", "email": "dev0@bulk.io", "specialty": "x"}]
    response = await bulk(client, fmt, payload, "skip")
    assert response.status_code == 201, response.text
    # dev2 exists; dev0 repeats within the payload: the first row sent wins, the repeat is skipped.
    assert response.json() == {"created": 3, "updated": 0, "skipped": 2}
    rows = await by_email(database_url)
    assert len(rows) == 4
    assert rows["dev2@bulk.io"]["name"] == "Original"
    assert rows["dev2@bulk.io"]["updated_at"] == datetime.fromisoformat(kept["updated_at"])
    assert rows["dev0@bulk.io"]["name"] == "Dev 000000"


@pytest.mark.parametrize("fmt", FORMATS)
async def test_update_mode_takes_new_name_and_specialty(client: httpx.AsyncClient, database_url: str, fmt: str) -> None:
    old = await create(client, name="Original", email="Dev2@BULK.io", specialty="kept")
    payload = [*people(4), {"name": "Last One", "email": "DEV0@bulk.io", "specialty": "latest"}]
    response = await bulk(client, fmt, payload, "update")
    assert response.status_code == 201, response.text
    assert response.json() == {"created": 3, "updated": 2, "skipped": 0}
    rows = await by_email(database_url)
    assert len(rows) == 4
    updated = rows["dev2@bulk.io"]
    assert (updated["id"], updated["email"]) == (old["id"], "Dev2@BULK.io")  # same row, email as first stored
    assert (updated["name"], updated["specialty"]) == ("Dev 000002", "imported")
    assert updated["updated_at"] > datetime.fromisoformat(old["updated_at"])
    assert updated["created_at"] == datetime.fromisoformat(old["created_at"])
    # dev0 repeats within the payload: the last row sent wins.
    assert (rows["dev0@bulk.io"]["name"], rows["dev0@bulk.io"]["specialty"]) == ("Last One", "latest")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_bad_row_50001_of_100000_leaves_the_table_unchanged(
    client: httpx.AsyncClient, database_url: str, fmt: str
) -> None:
    await create(client, name="Before", email="before@x.io", specialty="kept")
    before = await table(database_url)
    payload = people(100_000)
    payload[50_000] = {"name": "Bad", "email": "not-an-email", "specialty": "x"}
    body = assert_problem(await bulk(client, fmt, payload), 400)
    (problem,) = body["extra"]
    assert (problem["row"], problem["key"]) == (50_001, "email")
    if fmt != "json":
        assert problem["line"] == 50_001 + (fmt == "csv")  # CSV's header is line 1
    assert await table(database_url) == before


@pytest.mark.parametrize(
    ("fmt", "body", "row", "key"),
    [
        ("json", b'[{"name": "A", "email": "a@x.io", "specialty": "s"}, {"name": "B", "email": "b@x"}]', 2, "email"),
        ("json", b'[{"name":"A","email":"a@x.io","specialty":"s"}, {"name": "B", "email": "b@x.i"}]', 2, "specialty"),
        ("json", b'[{"name": "A", "email": "a@x.io", "specialty": "s", "id": 1}]', 1, "id"),
        ("json", b'[{"name": " ", "email": "a@x.io", "specialty": "s"}]', 1, "name"),
        ("ndjson", b'{"name": "A", "email": "a@x.io", "specialty": "s"}\n{"name": "B", "spec', 2, None),
        ("ndjson", b'{"name": "A", "email": "a@x.io", "specialty": "s"}\n\n[1, 2]\n', 2, None),
        ("ndjson", b'{"name": "A\\u0000", "email": "a@x.io", "specialty": "s"}\n', 1, "name"),
        ("csv", b"name,email,specialty\nA,a@x.io,s\nB,b@x.io\n", 2, None),
        ("csv", b"name,email,specialty\nA,a@x.io,s\nB,b@x.io," + b"x" * 101 + b"\n", 2, "specialty"),
        ("csv", b'name,email,specialty\nA,a@x.io,"unterminated\n', 1, None),
        ("csv", b"name,email,specialty\nA,a@x.io,\xff\xfe\n", 1, None),
    ],
)
async def test_invalid_rows_are_named(
    client: httpx.AsyncClient, database_url: str, fmt: str, body: bytes, row: int, key: str | None
) -> None:
    problem = assert_problem(await bulk(client, fmt, body), 400)
    assert problem["extra"][0]["row"] == row
    assert problem["extra"][0]["key"] == key
    assert problem["extra"][0]["message"]
    assert await table(database_url) == []


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        ("json", b'{"name": "A", "email": "a@x.io", "specialty": "s"}'),
        ("json", b"[{"),
        ("json", b""),
        ("csv", b"name,email\nA,a@x.io\n"),
        ("csv", b"name,email,specialty,id\nA,a@x.io,s,1\n"),
    ],
)
async def test_malformed_bodies_are_400(client: httpx.AsyncClient, fmt: str, body: bytes) -> None:
    assert_problem(await bulk(client, fmt, body), 400)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "text/csv; charset=latin-1", None])
async def test_other_content_types_are_415(client: httpx.AsyncClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post("/api/developers/bulk", content=encode("csv", people(1)), headers=headers)
    assert_problem(response, 415)
    assert response.headers["accept-post"] == "application/json, application/x-ndjson, text/csv"


async def test_unknown_conflict_mode_is_400(client: httpx.AsyncClient) -> None:
    assert_problem(await bulk(client, "json", people(1), "replace"), 400)


async def test_concurrent_overlapping_imports_do_not_deadlock(client: httpx.AsyncClient, database_url: str) -> None:
    forward, backward = people(3000), people(3000)[::-1]
    responses = await asyncio.gather(
        bulk(client, "ndjson", forward, "skip"),
        bulk(client, "json", backward, "skip"),
        bulk(client, "csv", people(3000, start=1500), "update"),
    )
    assert [r.status_code for r in responses] == [201, 201, 201], [r.text for r in responses]
    assert sum(r.json()["created"] for r in responses) == 4500
    assert len(await table(database_url)) == 4500


async def test_conflicts_after_the_first_chunks_are_named_precisely(
    client: httpx.AsyncClient, database_url: str
) -> None:
    # Chunks of 10,000 rows are written as they arrive: rows 1..10,000 are in the table before row 15,000 meets
    # an existing email, and row 20,000 repeats row 3's email. Neither is misreported, and nothing stays written.
    await create(client, name="Existing", email="DEV14999@bulk.io", specialty="kept")
    before = await table(database_url)
    payload = people(25_000)
    payload[19_999] = {"name": "Repeat", "email": "dev2@BULK.io", "specialty": "x"}
    body = assert_problem(await bulk(client, "ndjson", payload), 409)
    assert body["extra"] == [
        {"email": "dev2@bulk.io", "rows": [3, 20_000], "reason": "repeated"},
        {"email": "dev14999@bulk.io", "rows": [15_000], "reason": "taken"},
    ]
    assert await table(database_url) == before
