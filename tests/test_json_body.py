"""JSON bodies that are not UTF-8, or nest arrays a thousand deep, are the client's mistake on every route: 400."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import assert_problem
from tests.database import fetchval

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
