"""Create, read, update, delete one developer: success answers and every error a client can provoke."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.client import assert_problem
from tests.developers.api import create

ADA = {"name": "Ada Lovelace", "email": "Ada@Example.com", "specialty": "mathematics"}


async def count(client: httpx.AsyncClient) -> int:
    return len((await client.get("/api/developers")).json()["items"])


async def test_create_returns_the_stored_developer(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/developers", json=ADA)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "email", "specialty", "created_at", "updated_at"}
    assert {k: body[k] for k in ADA} == ADA  # email kept as written
    assert isinstance(body["id"], int)
    created = datetime.fromisoformat(body["created_at"])
    assert created.tzinfo is not None
    assert body["created_at"] == body["updated_at"]
    assert (await client.get(f"/api/developers/{body['id']}")).json() == body


@pytest.mark.parametrize("email", ["ada@example.com", "ADA@EXAMPLE.COM", "aDa@eXample.cOm"])
async def test_duplicate_email_in_any_case_is_a_conflict(client: httpx.AsyncClient, email: str) -> None:
    await create(client, **ADA)
    response = await client.post("/api/developers", json={**ADA, "email": email, "name": "Other"})
    body = assert_problem(response, 409)
    assert email in body["detail"]
    assert await count(client) == 1


LONG = "x" * 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@b.co", "specialty": "s"}, "name"),  # missing
        ({"name": "", "email": "a@b.co", "specialty": "s"}, "name"),  # empty
        ({"name": "   ", "email": "a@b.co", "specialty": "s"}, "name"),  # blank
        ({"name": LONG, "email": "a@b.co", "specialty": "s"}, "name"),  # too long
        ({"name": "a\x00b", "email": "a@b.co", "specialty": "s"}, "name"),  # NUL, which PostgreSQL rejects
        ({"name": 5, "email": "a@b.co", "specialty": "s"}, "name"),  # wrong type
        ({"name": None, "email": "a@b.co", "specialty": "s"}, "name"),
        ({"name": "n", "email": "not-an-email", "specialty": "s"}, "email"),
        ({"name": "n", "email": "a@b", "specialty": "s"}, "email"),
        ({"name": "n", "email": "a b@c.de", "specialty": "s"}, "email"),
        ({"name": "n", "email": "a@b.co" + "m" * 250, "specialty": "s"}, "email"),
        ({"name": "n", "email": "a@b.co", "specialty": ""}, "specialty"),
        ({"name": "n", "email": "a@b.co", "specialty": "s" * 101}, "specialty"),
        ({"name": "n", "email": "a@b.co", "specialty": "s", "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ({"name": "n", "email": "a@b.co", "specialty": "s", "id": 7}, "id"),
    ],
)
async def test_invalid_body_is_400_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(await client.post("/api/developers", json=body), 400)
    assert field in str(problem["extra"])
    assert await count(client) == 0


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'"x"', b"\xff\xfe"])
async def test_malformed_json_is_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post("/api/developers", content=raw, headers={"content-type": "application/json"})
    assert_problem(response, 400)


async def test_get_unknown_and_invalid_ids(client: httpx.AsyncClient) -> None:
    assert "999" in assert_problem(await client.get("/api/developers/999"), 404)["detail"]
    assert_problem(await client.get("/api/developers/0"), 400)
    assert_problem(await client.get(f"/api/developers/{2**63}"), 400)
    assert_problem(await client.get("/api/developers/abc"), 400)  # not an id (tests/test_path_ids.py)


async def test_patch_changes_only_given_fields_and_moves_updated_at(client: httpx.AsyncClient) -> None:
    before = await create(client, **ADA)
    response = await client.patch(f"/api/developers/{before['id']}", json={"email": "ada@analytical.engine"})
    assert response.status_code == 200
    after = response.json()
    assert after["email"] == "ada@analytical.engine"
    assert (after["name"], after["specialty"], after["created_at"]) == (
        before["name"],
        before["specialty"],
        before["created_at"],
    )
    assert datetime.fromisoformat(after["updated_at"]) > datetime.fromisoformat(before["updated_at"])
    both = await client.patch(f"/api/developers/{before['id']}", json={"name": "A. L.", "specialty": "poetry"})
    assert (both.json()["name"], both.json()["specialty"]) == ("A. L.", "poetry")


async def test_empty_patch_changes_nothing(client: httpx.AsyncClient) -> None:
    before = await create(client, **ADA)
    response = await client.patch(f"/api/developers/{before['id']}", json={})
    assert response.status_code == 200
    assert response.json() == before


async def test_patch_errors(client: httpx.AsyncClient) -> None:
    ada = await create(client, **ADA)
    bob = await create(client, name="Bob", email="bob@example.com", specialty="compilers")
    assert_problem(await client.patch("/api/developers/999", json={"name": "x"}), 404)
    assert_problem(await client.patch("/api/developers/999", json={}), 404)
    # Bob taking Ada's email in another case: a conflict, and Bob keeps his own.
    assert_problem(await client.patch(f"/api/developers/{bob['id']}", json={"email": "ADA@example.COM"}), 409)
    assert (await client.get(f"/api/developers/{bob['id']}")).json() == bob
    # Changing the case of one's own email is not a clash.
    own = await client.patch(f"/api/developers/{ada['id']}", json={"email": "ada@example.com"})
    assert own.status_code == 200
    for bad in ({"name": ""}, {"email": "nope"}, {"specialty": None}, {"updated_at": "now"}, {"name": 1}):
        assert_problem(await client.patch(f"/api/developers/{bob['id']}", json=bad), 400)
    assert (await client.get(f"/api/developers/{bob['id']}")).json() == bob


async def test_delete(client: httpx.AsyncClient) -> None:
    ada = await create(client, **ADA)
    response = await client.delete(f"/api/developers/{ada['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(f"/api/developers/{ada['id']}"), 404)
    assert_problem(await client.delete(f"/api/developers/{ada['id']}"), 404)
    # The email is free again.
    await create(client, **ADA)
