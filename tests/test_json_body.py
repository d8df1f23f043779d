"""JSON bodies: only as application/json (415 otherwise), and 400 when not UTF-8 or nested a thousand deep."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from tests.accounts.api import PASSWORD, account
from tests.client import assert_problem
from tests.database import fetch, fetchval
from tests.developers.api import create

NOT_UTF8 = b'{"name": "Ad\xe1", "email": "ada@x.io", "specialty": "s"}'  # Latin-1, not UTF-8
DEEP = 1000  # far beyond any body of this API, near Python's recursion limit: about 2 KB of brackets
DEEP_ARRAY = b"[" * DEEP + b"]" * DEEP
DEEP_FIELD = b'{"name": ' + DEEP_ARRAY + b', "email": "ada@x.io", "specialty": "s"}'

JSON = "application/json"
NDJSON = "application/x-ndjson"
Route = tuple[str, str, str, bytes]
# Every route with a JSON body, with where the bad document goes in it.
ROUTES: list[Route] = [
    ("POST", "/api/developers", JSON, b"%s"),
    ("PATCH", "/api/developers/1", JSON, b"%s"),
    ("PATCH", "/api/developers", JSON, b'[{"id": 1, "x": %s}]'),
    ("POST", "/api/developers/bulk-delete", JSON, b'{"ids": [1], "x": %s}'),
    ("POST", "/api/developers/bulk", JSON, b"[%s]"),
    ("POST", "/api/developers/bulk", NDJSON, b"%s\n"),
    ("POST", "/api/users", JSON, b"%s"),
    ("PATCH", "/api/users/1", JSON, b"%s"),
]


async def send(client: httpx.AsyncClient, route: Route, document: bytes) -> httpx.Response:
    method, path, media_type, template = route
    return await client.request(method, path, content=template % document, headers={"content-type": media_type})


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: " ".join(route[:3]))
async def test_invalid_utf8_is_400(client: httpx.AsyncClient, database_url: str, route: Route) -> None:
    problem = assert_problem(await send(client, route, NOT_UTF8), 400)
    assert "not valid UTF-8 JSON" in problem["detail"]
    assert await fetchval(database_url, "SELECT count(*) FROM developers") == 0


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: " ".join(route[:3]))
@pytest.mark.parametrize("document", [DEEP_ARRAY, DEEP_FIELD], ids=["array", "field"])
async def test_deep_nesting_is_400(client: httpx.AsyncClient, database_url: str, route: Route, document: bytes) -> None:
    problem = assert_problem(await send(client, route, document), 400)
    assert problem["detail"]
    assert await fetchval(database_url, "SELECT count(*) FROM developers") == 0


async def test_deep_nesting_is_named(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await send(client, ROUTES[0], DEEP_FIELD), 400)
    assert "nest too deeply" in problem["detail"]
    problem = assert_problem(await send(client, ROUTES[4], DEEP_ARRAY), 400)
    assert "nest too deeply" in problem["detail"]


# Every route with a JSON body, each with a body it would act on, and the header that names the JSON type in a 415.
ACTIONS = [
    ("POST", "/api/developers", {"name": "Bob", "email": "bob@x.io", "specialty": "s"}, "accept-post"),
    ("PATCH", "/api/developers/1", {"name": "Changed"}, "accept-patch"),
    ("PATCH", "/api/developers", [{"id": 1, "name": "Changed"}], "accept-patch"),
    ("POST", "/api/developers/bulk-delete", {"ids": [1]}, "accept-post"),
    ("POST", "/api/users", {"email": "eve@x.io", "password": PASSWORD}, "accept-post"),
    ("PATCH", "/api/users/1", {"role": "admin"}, "accept-patch"),
]


async def snapshot(database_url: str) -> list[Any]:
    developers = await fetch(database_url, "SELECT id, name, email, specialty, updated_at FROM developers")
    users = await fetch(database_url, "SELECT id, email, role, updated_at FROM users")
    return [tuple(row) for row in [*developers, *users]]


@pytest.mark.parametrize(("method", "path", "body", "accept"), ACTIONS, ids=[f"{a[0]} {a[1]}" for a in ACTIONS])
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", "text/json", None],
)
async def test_other_content_types_are_415(
    client: httpx.AsyncClient,
    database_url: str,
    method: str,
    path: str,
    body: Any,
    accept: str,
    content_type: str | None,
) -> None:
    # A browser sends text/plain or a form cross-site without asking first: never taken as JSON.
    await create(client, name="Ada", email="ada@x.io", specialty="math")
    await account(client, "viewer@x.io", "viewer")
    before = await snapshot(database_url)
    headers = {"content-type": content_type} if content_type else {}
    response = await client.request(method, path, content=msgspec.json.encode(body), headers=headers)
    problem = assert_problem(response, 415)
    assert response.headers[accept] == "application/json"
    assert "application/json" in problem["detail"]
    assert await snapshot(database_url) == before


@pytest.mark.parametrize("content_type", ["application/json; charset=UTF-8", "Application/JSON;charset=utf8"])
async def test_json_with_a_utf8_charset_is_taken(client: httpx.AsyncClient, content_type: str) -> None:
    body = msgspec.json.encode({"name": "Ada", "email": "ada@x.io", "specialty": "math"})
    created = await client.post("/api/developers", content=body, headers={"content-type": content_type})
    assert created.status_code == 201, created.text
