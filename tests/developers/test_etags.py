"""Conditional requests: ETags that change exactly when a developer does, 304 for a copy that is current, 412 for a
write based on a version that is not, 428 when the server requires If-Match, and no lost update."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from litestar import Litestar

from service.app import create_app
from service.core.settings import Settings
from tests.client import assert_problem, serve
from tests.database import empty, fetchval
from tests.developers.api import bulk, create, table

ADA = {"name": "Ada Lovelace", "email": "ada@x.io", "specialty": "mathematics"}
GRACE = {"name": "Grace Hopper", "email": "grace@x.io", "specialty": "compilers"}


async def etag_of(client: httpx.AsyncClient, developer_id: int) -> str:
    response = await client.get(f"/api/developers/{developer_id}")
    assert response.status_code == 200, response.text
    return response.headers["etag"]


async def version(database_url: str, developer_id: int) -> int:
    return int(await fetchval(database_url, f"SELECT version FROM developers WHERE id = {developer_id}"))


# Validators


async def test_the_etag_changes_with_every_write_of_the_developer_and_only_then(
    client: httpx.AsyncClient, database_url: str
) -> None:
    posted = await client.post("/api/developers", json=ADA)
    ada = posted.json()
    other = await create(client, **GRACE)
    first = await etag_of(client, ada["id"])
    assert first == posted.headers["etag"] == f'"{ada["id"]}.1"'  # strong: no W/
    assert await etag_of(client, ada["id"]) == first  # reads change nothing
    assert (await client.patch(f"/api/developers/{other['id']}", json={"name": "G"})).status_code == 200
    unchanged = await client.patch(f"/api/developers/{ada['id']}", json={})  # a PATCH of no field
    assert unchanged.headers["etag"] == first
    assert await etag_of(client, ada["id"]) == first  # others' writes and writing nothing change nothing

    seen = {first}
    patched = await client.patch(f"/api/developers/{ada['id']}", json={"name": "Ada"})
    assert patched.headers["etag"] == await etag_of(client, ada["id"]) not in seen
    seen.add(patched.headers["etag"])
    # The same value again is still a write (updated_at moves): a new version.
    again = await client.patch(f"/api/developers/{ada['id']}", json={"name": "Ada"})
    assert again.headers["etag"] not in seen
    seen.add(again.headers["etag"])
    batch = await client.patch("/api/developers", json=[{"id": ada["id"], "specialty": "poetry"}])
    assert batch.status_code == 200, batch.text
    batched = await etag_of(client, ada["id"])
    assert batched not in seen
    seen.add(batched)
    skipped = await bulk(client, "json", [{"name": "Other", "email": "ada@x.io", "specialty": "x"}], "skip")
    assert skipped.json()["skipped"] == 1
    assert await etag_of(client, ada["id"]) == batched  # skip writes nothing
    upserted = await bulk(client, "json", [{"name": "Ada L.", "email": "ADA@x.io", "specialty": "logic"}], "update")
    assert upserted.json()["updated"] == 1
    assert await etag_of(client, ada["id"]) not in seen
    assert await version(database_url, ada["id"]) == 5


async def test_a_page_has_an_etag_of_its_content(client: httpx.AsyncClient) -> None:
    ada, grace = await create(client, **ADA), await create(client, **GRACE)
    page = await client.get("/api/developers?specialty=mathematics")
    assert page.headers["etag"] == (await client.get("/api/developers?specialty=mathematics")).headers["etag"]
    assert page.headers["etag"] != (await client.get("/api/developers")).headers["etag"]
    await client.patch(f"/api/developers/{grace['id']}", json={"name": "G"})  # not on this page
    assert (await client.get("/api/developers?specialty=mathematics")).headers["etag"] == page.headers["etag"]
    await client.patch(f"/api/developers/{ada['id']}", json={"name": "A"})
    assert (await client.get("/api/developers?specialty=mathematics")).headers["etag"] != page.headers["etag"]


# If-None-Match


@pytest.mark.parametrize(
    "header",
    [
        "{etag}",
        "W/{etag}",
        '"0.1", {etag}',
        '"x",W/{etag} , "y"',
        "*",
        " * ",
    ],
)
async def test_if_none_match_that_matches_is_304_with_the_same_etag(client: httpx.AsyncClient, header: str) -> None:
    ada = await create(client, **ADA)
    for path in (f"/api/developers/{ada['id']}", "/api/developers"):
        etag = (await client.get(path)).headers["etag"]
        response = await client.get(path, headers={"If-None-Match": header.format(etag=etag)})
        assert response.status_code == 304, response.text
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert "content-type" not in response.headers


@pytest.mark.parametrize("header", ['"1.2"', 'W/"1.2"', '"2.1"', "1.1", '"1.1', "", "**", '"", ,,'])
async def test_if_none_match_that_does_not_match_is_200(client: httpx.AsyncClient, header: str) -> None:
    ada = await create(client, **ADA)
    assert await etag_of(client, ada["id"]) == '"1.1"'
    response = await client.get(f"/api/developers/{ada['id']}", headers={"If-None-Match": header})
    assert response.status_code == 200, response.text
    assert response.json() == ada


async def test_if_none_match_star_of_a_missing_developer_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/developers/7", headers={"If-None-Match": "*"}), 404)


# If-Match


async def test_a_stale_if_match_is_412_and_writes_nothing(client: httpx.AsyncClient, database_url: str) -> None:
    ada = await create(client, **ADA)
    stale = await etag_of(client, ada["id"])
    fresh = (await client.patch(f"/api/developers/{ada['id']}", json={"name": "Ada B."})).headers["etag"]
    before = await table(database_url)
    for header in (stale, f"W/{fresh}", '"2.2"', "garbage"):
        for method, body in (("PATCH", {"name": "Lost"}), ("PATCH", {}), ("DELETE", None)):
            response = await client.request(
                method, f"/api/developers/{ada['id']}", json=body, headers={"If-Match": header}
            )
            problem = assert_problem(response, 412)
            assert "nothing was written" in problem["detail"]
    assert await table(database_url) == before
    assert await version(database_url, ada["id"]) == 2

    fresh_list = f'"0.9", {fresh}'
    patched = await client.patch(f"/api/developers/{ada['id']}", json={"name": "C"}, headers={"If-Match": fresh_list})
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "C"
    assert patched.headers["etag"] == await etag_of(client, ada["id"]) == f'"{ada["id"]}.3"'
    deleted = await client.delete(f"/api/developers/{ada['id']}", headers={"If-Match": patched.headers["etag"]})
    assert deleted.status_code == 204
    assert await table(database_url) == []


async def test_if_match_star_means_the_developer_exists(client: httpx.AsyncClient, database_url: str) -> None:
    ada = await create(client, **ADA)
    star = {"If-Match": "*"}
    assert (await client.patch(f"/api/developers/{ada['id']}", json={"name": "A"}, headers=star)).status_code == 200
    assert (await client.patch(f"/api/developers/{ada['id']}", json={}, headers=star)).status_code == 200
    assert (await client.delete(f"/api/developers/{ada['id']}", headers=star)).status_code == 204
    for method, body in (("PATCH", {"name": "B"}), ("PATCH", {}), ("DELETE", None)):
        response = await client.request(method, f"/api/developers/{ada['id']}", json=body, headers=star)
        assert "does not exist" in assert_problem(response, 412)["detail"]
        # A tag of a developer that is gone: as without If-Match, 404.
        tagged = {"If-Match": f'"{ada["id"]}.2"'}
        assert_problem(await client.request(method, f"/api/developers/{ada['id']}", json=body, headers=tagged), 404)
    assert await table(database_url) == []


async def test_a_batch_with_one_stale_item_is_412_listing_it_and_writes_nothing(
    client: httpx.AsyncClient, database_url: str
) -> None:
    ada, grace = await create(client, **ADA), await create(client, **GRACE)
    third = await create(client, name="Third", email="t@x.io", specialty="x")
    tags = {d["id"]: await etag_of(client, d["id"]) for d in (ada, grace, third)}
    await client.patch(f"/api/developers/{grace['id']}", json={"name": "Grace H."})
    await client.patch(f"/api/developers/{third['id']}", json={"name": "Third T."})
    before = await table(database_url)
    items = [
        {"id": ada["id"], "name": "A", "if_match": tags[ada["id"]]},
        {"id": grace["id"], "name": "G", "if_match": tags[grace["id"]]},  # stale
        {"id": third["id"], "name": "T", "if_match": f"W/{await etag_of(client, third['id'])}"},  # weak: never
    ]
    problem = assert_problem(await client.patch("/api/developers", json=items), 412)
    assert problem["extra"] == [{"id": grace["id"]}, {"id": third["id"]}]
    assert "2 developer(s)" in problem["detail"]
    assert await table(database_url) == before
    # A missing id is 404, as without if_match, and nothing is written either.
    missing = [items[0], {"id": 99, "name": "X", "if_match": '"99.1"'}]
    assert assert_problem(await client.patch("/api/developers", json=missing), 404)["extra"] == [{"id": 99}]
    assert await table(database_url) == before

    fresh = [
        {"id": ada["id"], "name": "A", "if_match": tags[ada["id"]]},
        {"id": grace["id"], "name": "G", "if_match": await etag_of(client, grace["id"])},
        {"id": third["id"], "name": "T"},  # no if_match: any version
    ]
    response = await client.patch("/api/developers", json=fresh)
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 3}
    assert [await version(database_url, d["id"]) for d in (ada, grace, third)] == [2, 3, 3]


@pytest.mark.parametrize("if_match", ["1.1", '"1.1', "", "x" * 100])
async def test_a_batch_item_s_if_match_must_be_an_entity_tag(client: httpx.AsyncClient, if_match: str) -> None:
    ada = await create(client, **ADA)
    response = await client.patch("/api/developers", json=[{"id": ada["id"], "name": "A", "if_match": if_match}])
    assert_problem(response, 400)
    only_if_match = [{"id": ada["id"], "if_match": '"1.1"'}]  # no field to change
    assert_problem(await client.patch("/api/developers", json=only_if_match), 400)


# REQUIRE_IF_MATCH


@pytest.fixture
async def strict(settings: Settings, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await empty(database_url, "developers", "users")
    app: Litestar = create_app(msgspec.structs.replace(settings, require_if_match=True))
    try:
        async with serve(app) as http:
            yield http
    finally:
        await app.state.feed.engine.dispose()


async def test_require_if_match_refuses_unconditional_writes_with_428(
    strict: httpx.AsyncClient, database_url: str
) -> None:
    ada = await create(strict, **ADA)
    before = await table(database_url)
    for method, body in (("PATCH", {"name": "B"}), ("DELETE", None)):
        response = await strict.request(method, f"/api/developers/{ada['id']}", json=body)
        assert "If-Match" in assert_problem(response, 428)["detail"]
    assert await table(database_url) == before
    etag = await etag_of(strict, ada["id"])
    patched = await strict.patch(f"/api/developers/{ada['id']}", json={"name": "B"}, headers={"If-Match": etag})
    assert patched.status_code == 200, patched.text
    deleted = await strict.delete(f"/api/developers/{ada['id']}", headers={"If-Match": patched.headers["etag"]})
    assert deleted.status_code == 204


# No lost update

CLIENTS, CYCLES = 12, 8


async def read_modify_write(client: httpx.AsyncClient, developer_id: int) -> int:
    """Add one to the number in the developer's name, CYCLES times, each time from the version read; 412s seen."""
    conflicts = 0
    for _ in range(CYCLES):
        while True:
            read = await client.get(f"/api/developers/{developer_id}")
            name = read.json()["name"]
            number = int(name.rsplit(" ", 1)[1])
            written = await client.patch(
                f"/api/developers/{developer_id}",
                json={"name": f"Counter {number + 1}"},
                headers={"If-Match": read.headers["etag"]},
            )
            if written.status_code == 200:
                break
            assert_problem(written, 412)
            conflicts += 1
    return conflicts


async def test_concurrent_read_modify_write_cycles_with_if_match_lose_no_update(
    client: httpx.AsyncClient, database_url: str
) -> None:
    counter = await create(client, name="Counter 0", email="c@x.io", specialty="x")
    await asyncio.gather(*(read_modify_write(client, counter["id"]) for _ in range(CLIENTS)))
    name = await fetchval(database_url, f"SELECT name FROM developers WHERE id = {counter['id']}")
    assert name == f"Counter {CLIENTS * CYCLES}"
    assert await version(database_url, counter["id"]) == 1 + CLIENTS * CYCLES
