"""Background imports in process: submit, the worker's outcomes in each format and conflict mode, bad rows,
cancels, who may see which job, pagination, what is refused at submit, change events, queue reconnects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import msgspec
import pytest

from service.app import create_app
from service.core.settings import Settings
from service.imports.worker import Worker
from tests.client import assert_problem, serve
from tests.database import fetch, fetchval, holding, queue_tables, run_sql
from tests.developers.api import FORMATS, bulk, encode, people
from tests.developers.feed_client import running, sse
from tests.imports.api import as_user, job, quick, reset, submit, submitted, until_job
from tests.imports.faults import until_queue_empty
from tests.polling import until
from tests.postgresql_only import PGQUEUER


async def emails(database_url: str) -> list[str]:
    return [row["email"] for row in await fetch(database_url, "SELECT email FROM developers ORDER BY email")]


async def test_json_array_in_error_mode_writes_every_row_once(api: httpx.AsyncClient, database_url: str) -> None:
    job_id = await submitted(api, "json", people(2500))
    done = await until_job(api, job_id)
    assert done["status"] == "succeeded", done
    assert (done["rows_total"], done["rows_done"], done["created"], done["updated"], done["skipped"]) == (
        2500,
        2500,
        2500,
        0,
        0,
    )
    assert done["error"] is None
    started, finished = (datetime.fromisoformat(done[key]) for key in ("started_at", "finished_at"))
    assert started <= finished  # finished_at is when the rows were written, not the import transaction's start
    rows = await fetch(database_url, "SELECT name, email, specialty FROM developers ORDER BY name")
    assert [dict(row) for row in rows] == people(2500)
    assert await fetchval(database_url, "SELECT count(*) FROM import_uploads") == 0


async def test_ndjson_in_skip_mode_keeps_existing_developers(api: httpx.AsyncClient, database_url: str) -> None:
    await run_sql(
        database_url, "INSERT INTO developers (name, email, specialty) VALUES ('Old', 'DEV3@bulk.io', 'kept')"
    )
    body = [*people(10), {"name": "Again", "email": "dev5@BULK.io", "specialty": "x"}]
    route = "/api/developers/imports.ndjson"  # NDJSON's own route
    done = await until_job(api, await submitted(api, "ndjson", body, on_conflict="skip", route=route))
    assert done["status"] == "succeeded", done
    assert (done["rows_total"], done["created"], done["updated"], done["skipped"]) == (11, 9, 0, 2)
    assert await emails(database_url) == sorted(
        ["DEV3@bulk.io", *(p["email"] for p in people(10) if p["email"] != "dev3@bulk.io")]
    )
    old = await fetch(database_url, "SELECT name FROM developers WHERE email = 'DEV3@bulk.io'")
    assert old[0]["name"] == "Old"


async def test_csv_in_update_mode_updates_existing_developers(api: httpx.AsyncClient, database_url: str) -> None:
    await run_sql(database_url, "INSERT INTO developers (name, email, specialty) VALUES ('Old', 'dev1@bulk.io', 'old')")
    route = "/api/developers/imports.csv"  # CSV's own route
    job_id = await submitted(api, "csv", people(4, specialty="new"), on_conflict="update", route=route)
    done = await until_job(api, job_id)
    assert done["status"] == "succeeded", done
    assert (done["rows_total"], done["created"], done["updated"], done["skipped"]) == (4, 3, 1, 0)
    rows = await fetch(database_url, "SELECT name, email, specialty FROM developers ORDER BY email")
    assert [dict(row) for row in rows] == sorted(people(4, specialty="new"), key=lambda p: p["email"])


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_bad_row_fails_the_job_with_the_bulk_routes_problem(
    api: httpx.AsyncClient, database_url: str, fmt: str
) -> None:
    body = encode(fmt, [*people(1500), {"name": "Bad", "email": "not-an-email", "specialty": "x"}, *people(5, 2000)])
    expected = assert_problem(await bulk(api, fmt, body), 400)
    done = await until_job(api, await submitted(api, fmt, body))
    assert done["status"] == "failed", done
    assert done["error"] == expected
    assert "row 1501" in done["error"]["detail"]
    assert done["rows_total"] is None
    assert done["created"] is None
    assert await fetchval(database_url, "SELECT count(*) FROM developers") == 0
    assert await fetchval(database_url, "SELECT count(*) FROM import_uploads") == 0


async def test_taken_emails_fail_the_job_with_a_409_problem(api: httpx.AsyncClient, database_url: str) -> None:
    await run_sql(database_url, "INSERT INTO developers (name, email, specialty) VALUES ('Old', 'dev2@bulk.io', 'k')")
    done = await until_job(api, await submitted(api, "json", people(5)))
    assert done["status"] == "failed"
    assert done["error"]["status"] == 409
    assert done["error"]["extra"] == [{"email": "dev2@bulk.io", "rows": [3], "reason": "taken"}]
    assert await emails(database_url) == ["dev2@bulk.io"]


async def test_cancel_while_queued(idle: httpx.AsyncClient, database_url: str) -> None:
    job_id = await submitted(idle, "json", people(10))
    response = await idle.delete(f"/api/imports/{job_id}")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert (cancelled["status"], cancelled["cancel_requested"]) == ("cancelled", True)
    assert cancelled["finished_at"] is not None
    assert (await job(idle, job_id))["status"] == "cancelled"
    assert_problem(await idle.delete(f"/api/imports/{job_id}"), 409)
    assert await fetchval(database_url, "SELECT count(*) FROM import_uploads") == 0


async def test_a_cancelled_job_is_skipped_by_a_worker(
    idle: httpx.AsyncClient, settings: Settings, database_url: str
) -> None:
    job_id = await submitted(idle, "json", people(10))
    assert (await idle.delete(f"/api/imports/{job_id}")).status_code == 200
    worker = Worker(quick(settings))
    async with worker.lifespan(None):
        await until(lambda: worker.ready, "the worker to connect")
        await until_queue_empty(database_url)
    assert (await job(idle, job_id))["status"] == "cancelled"
    assert await fetchval(database_url, "SELECT count(*) FROM developers") == 0


async def test_cancel_while_running_writes_nothing(api: httpx.AsyncClient, database_url: str) -> None:
    # Another transaction holds an email of row 5,000 (the second chunk): the import's COPY waits for it, midway.
    blocking = "INSERT INTO developers (name, email, specialty) VALUES ('B', 'dev4999@bulk.io', 'b')"
    async with holding(database_url, blocking):  # rolled back at the end of the block
        job_id = await submitted(api, "ndjson", people(50_000))
        await until_job(api, job_id, lambda j: j["status"] == "running" and j["rows_done"] > 0, "running")
        response = await api.delete(f"/api/imports/{job_id}")
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)
    done = await until_job(api, job_id)
    assert done["status"] == "cancelled", done
    assert done["created"] is None
    assert await fetchval(database_url, "SELECT count(*) FROM developers") == 0
    assert await fetchval(database_url, "SELECT count(*) FROM import_uploads") == 0
    assert_problem(await api.delete(f"/api/imports/{job_id}"), 409)


async def test_who_may_submit_read_list_and_cancel(idle: httpx.AsyncClient) -> None:
    viewer, alice, bob = as_user("viewer", 6), as_user("editor", 7), as_user("editor", 8)
    assert_problem(await submit(idle, "json", people(1), headers=viewer), 403)
    mine = await submitted(idle, "json", people(1), headers=alice)
    theirs = await submitted(idle, "json", people(1, 5), headers=bob)
    assert (await idle.get(f"/api/imports/{mine}", headers=alice)).json()["submitted_by"] == 7
    assert_problem(await idle.get(f"/api/imports/{mine}", headers=bob), 404)
    assert_problem(await idle.get(f"/api/imports/{mine}", headers=viewer), 404)
    assert_problem(await idle.delete(f"/api/imports/{mine}", headers=bob), 404)
    assert_problem(await idle.get("/api/imports/999999", headers=alice), 404)
    assert (await idle.get(f"/api/imports/{mine}")).status_code == 200  # the admin
    assert [j["id"] for j in (await idle.get("/api/imports", headers=alice)).json()["items"]] == [mine]
    assert [j["id"] for j in (await idle.get("/api/imports", headers=bob)).json()["items"]] == [theirs]
    assert [j["id"] for j in (await idle.get("/api/imports")).json()["items"]] == [theirs, mine]
    assert (await idle.get("/api/imports", headers=viewer)).json()["items"] == []
    assert (await idle.delete(f"/api/imports/{mine}")).json()["status"] == "cancelled"  # an admin may cancel


async def test_listing_is_keyset_paginated_newest_first(idle: httpx.AsyncClient) -> None:
    alice = as_user("editor", 7)
    ids = [await submitted(idle, "json", people(1, i), headers=alice) for i in range(5)]
    await submitted(idle, "json", people(1, 9), headers=as_user("editor", 8))
    pages, cursor = [], None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = (await idle.get("/api/imports", params=params, headers=alice)).json()
        pages.append([j["id"] for j in page["items"]])
        if (cursor := page["next_cursor"]) is None:
            break
    assert pages == [ids[:-3:-1], ids[2:0:-1], ids[:1]]
    assert_problem(await idle.get("/api/imports", params={"cursor": "x"}), 400)
    assert_problem(await idle.get("/api/imports", params={"limit": "101"}), 400)


async def test_415_and_413_at_submit(settings: Settings, database_url: str) -> None:
    await reset(database_url)
    app = create_app(msgspec.structs.replace(settings, bulk_max_bytes=1000))
    try:
        async with serve(app) as client:
            response = await client.post(
                "/api/developers/imports", content=b"name\n", headers={"content-type": "text/plain"}
            )
            assert_problem(response, 415)
            assert "text/csv" in response.headers["accept-post"]
            own_route = await submit(client, "csv", people(2), route="/api/developers/imports.ndjson")
            assert_problem(own_route, 415)
            assert own_route.headers["accept-post"] == "application/x-ndjson"
            assert_problem(await submit(client, "json", people(40)), 413)
            chunks = [encode("ndjson", people(40))[i : i + 100] for i in range(0, 3000, 100)]

            async def streamed() -> AsyncIterator[bytes]:
                for chunk in chunks:  # no Content-Length: the limit is found while streaming
                    yield chunk

            response = await client.post(
                "/api/developers/imports", content=streamed(), headers={"content-type": "application/x-ndjson"}
            )
            assert_problem(response, 413)
    finally:
        await app.state.feed.engine.dispose()
    assert await fetchval(database_url, "SELECT count(*) FROM import_jobs") == 0
    assert await fetchval(database_url, f"SELECT count(*) FROM {queue_tables(database_url)[0]}") == 0


async def test_import_events_arrive_on_the_change_feed(settings: Settings, database_url: str) -> None:
    await reset(database_url)
    async with running(quick(settings)) as run, sse(run) as stream:
        job_id = await submitted(run.api, "json", people(3), headers=as_user("editor", 7))
        events = []
        while not events or events[-1]["op"] != "import.succeeded":
            events.append(await stream.event())
    ops = [e["op"] for e in events]
    assert ops == ["import.queued", "import.running", "bulk", "import.succeeded"], ops
    assert all(e["job"]["id"] == job_id and e["job"]["submitted_by"] == 7 for e in events if e["op"] != "bulk")
    assert events[-1]["job"] | {"id": 0} == {
        "id": 0,
        "status": "succeeded",
        "on_conflict": "error",
        "rows_total": 3,
        "rows_done": 3,
        "created": 3,
        "updated": 0,
        "skipped": 0,
        "submitted_by": 7,
    }
    assert "job" not in events[2]  # developer events are as they were


@PGQUEUER
async def test_the_worker_reconnects_when_its_queue_connection_is_terminated(
    settings: Settings, database_url: str
) -> None:
    await reset(database_url)
    app = create_app(quick(settings))
    worker: Worker = app.state.worker
    try:
        async with serve(app) as client:
            await until(lambda: worker.ready, "the worker to connect")
            first = worker.queue_pid
            await run_sql(database_url, f"SELECT pg_terminate_backend({first})")
            await until(lambda: worker.connections == 2 and worker.ready, "the worker to reconnect")
            assert worker.queue_pid != first
            done = await until_job(client, await submitted(client, "csv", people(20)))
            assert done["status"] == "succeeded", done
    finally:
        await app.state.feed.engine.dispose()
    assert await fetchval(database_url, "SELECT count(*) FROM developers") == 20
