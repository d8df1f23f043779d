"""`GET /metrics`: request counts by route template, the pool as it is, the 503s counted by kind, bulk rows by
mode and the change feed's delivery lag."""

from __future__ import annotations

import asyncio
import time

import httpx
import msgspec
from litestar import Litestar
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from service.app import create_app
from service.core.settings import Settings
from tests.client import assert_problem, serve
from tests.db.unreachable import unreachable_app
from tests.developers.api import bulk, create, people
from tests.developers.feed_client import WAIT
from tests.system.scrape import Samples, moved, scrape, value

ONE = "/api/developers/{developer_id}"
COLLECTION = "/api/developers"


def requests(samples: Samples, method: str, path: str, status: int) -> float:
    return value(samples, "devdir_requests_total", method=method, path=path, status_code=str(status))


async def listening(client: httpx.AsyncClient) -> Samples:
    """A scrape once the change feed has its own connection (until then it polls through the request pool)."""
    for _ in range(1000):
        samples = await scrape(client)
        if value(samples, "devdir_change_feed_listening") == 1:
            return samples
        await asyncio.sleep(0.01)
    raise AssertionError("the change feed never connected its listener")


async def test_requests_are_counted_by_route_template(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    first = await create(client, name="Ada", email="ada@example.com", specialty="math")
    await create(client, name="Bob", email="bob@example.com", specialty="math")
    for _ in range(3):
        assert (await client.get(f"/api/developers/{first['id']}")).status_code == 200
    await client.get("/health")
    await client.get("/ready")
    after = await scrape(client)

    assert requests(after, "POST", COLLECTION, 201) - requests(before, "POST", COLLECTION, 201) == 2
    assert requests(after, "GET", ONE, 200) - requests(before, "GET", ONE, 200) == 3
    paths = {dict(labels).get("path") for name, labels in after if name == "devdir_requests_total"}
    assert f"/api/developers/{first['id']}" not in paths  # never a raw path
    assert not paths & {"/metrics", "/health", "/ready"}
    histogram = "devdir_request_duration_seconds_count"
    assert value(after, histogram, method="GET", path=ONE, status_code="200") >= 3


async def test_label_values_stay_bounded_whatever_the_client_sends(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    for path in ("/no/such/route", "/another/one", "/api/developers/1/x"):
        assert_problem(await client.get(path), 404)
    odd = await client.request("BREW", "/api/developers")
    assert odd.status_code == 405
    assert_problem(await client.get("/api/developers/abc"), 400)  # not an id: counted under its template
    assert_problem(await client.get("/api/developers", params={"limit": "x"}), 400)  # counted under its template
    after = await scrape(client)

    assert requests(after, "GET", "unmatched", 404) - requests(before, "GET", "unmatched", 404) == 3
    assert requests(after, "OTHER", "unmatched", 405) - requests(before, "OTHER", "unmatched", 405) == 1
    assert requests(after, "GET", COLLECTION, 400) - requests(before, "GET", COLLECTION, 400) == 1
    assert requests(after, "GET", ONE, 400) - requests(before, "GET", ONE, 400) == 1
    labels = {dict(labels).get(name) for name, labels in after for name in ("method", "path")}
    assert not labels & {"BREW", "/no/such/route", "/another/one", "/api/developers/abc"}


async def test_the_content_type_is_prometheus_text_with_one_charset(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    (content_type,) = response.headers.get_list("content-type")
    assert content_type.count("charset=") == 1, content_type  # was `...; charset=utf-8; charset=utf-8`
    parameters = [part.strip() for part in content_type.split(";")]
    assert sorted(parameters) == sorted(CONTENT_TYPE_LATEST.split("; "))  # what prometheus_client declares


async def test_the_duration_histogram_is_cumulative_and_adds_up(client: httpx.AsyncClient) -> None:
    for _ in range(5):
        assert (await client.get("/api/developers")).status_code == 200
    samples = await scrape(client)
    labels = {"method": "GET", "path": COLLECTION, "status_code": "200"}
    buckets = sorted(
        (float(dict(series)["le"]), count)
        for (name, series), count in samples.items()
        if name == "devdir_request_duration_seconds_bucket" and set(labels.items()) <= series
    )
    counts = [count for _, count in buckets]
    assert buckets[-1][0] == float("inf")
    assert counts == sorted(counts)  # each bucket holds those below it
    assert counts[-1] == value(samples, "devdir_request_duration_seconds_count", **labels) >= 5
    assert value(samples, "devdir_request_duration_seconds_sum", **labels) > 0
    assert value(samples, "devdir_requests_in_progress") == 1  # the scrape itself


async def test_pool_gauges_follow_a_held_connection(app: Litestar, client: httpx.AsyncClient) -> None:
    before = await listening(client)
    assert value(before, "devdir_db_pool_size") == 5
    async with app.state.feed.engine.connect() as connection:
        await connection.exec_driver_sql("SELECT 1")
        held = await scrape(client)
    after = await scrape(client)
    assert value(held, "devdir_db_pool_checked_out") == value(before, "devdir_db_pool_checked_out") + 1
    assert value(after, "devdir_db_pool_checked_out") == value(before, "devdir_db_pool_checked_out")
    assert value(held, "devdir_db_pool_connections") >= 1
    assert value(held, "devdir_db_pool_overflow") == 0
    assert value(held, "devdir_change_feed_subscribers") == 0


async def test_pool_starvation_counts_one_timeout(settings: Settings) -> None:
    starved = msgspec.structs.replace(settings, db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.5)
    app = create_app(starved)
    try:
        async with serve(app) as client:
            # The pool's one connection is opened now, so that holding it below takes an idle connection.
            assert_problem(await client.get("/api/developers/1"), 404)
            before = await listening(client)
            async with app.state.feed.engine.connect() as connection:
                await connection.exec_driver_sql("SELECT 1")
                assert_problem(await client.get("/api/developers/1"), 503)
                after = await scrape(client)
            assert value(after, "devdir_db_pool_timeouts_total") - value(before, "devdir_db_pool_timeouts_total") == 1
            waits = "devdir_db_pool_wait_seconds_count"
            assert value(after, waits) - value(before, waits) == 1
            for kind in ("statement_timeout", "conflict", "connection"):
                assert value(after, "devdir_db_errors_total", kind=kind) == value(
                    before, "devdir_db_errors_total", kind=kind
                )
    finally:
        await app.state.feed.engine.dispose()


async def test_an_unreachable_database_is_counted_as_a_connection_error() -> None:
    app = unreachable_app()
    try:
        async with serve(app) as client:
            assert_problem(await client.get("/api/developers/1"), 503)
            samples = await scrape(client)
        assert value(samples, "devdir_db_errors_total", kind="connection") == 1
        assert value(samples, "devdir_db_pool_timeouts_total") == 0
    finally:
        await app.state.feed.engine.dispose()


async def test_metrics_need_no_token_and_stay_out_of_the_api_document(app: Litestar) -> None:
    async with serve(app, bearer=None) as client:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert "devdir_db_pool_size" in response.text
        document = (await client.get("/schema/openapi.json")).json()
    assert "/metrics" not in document["paths"]


async def test_apps_in_one_process_keep_their_own_metrics(settings: Settings) -> None:
    apps = [create_app(settings) for _ in range(2)]
    try:
        for app in apps:
            async with serve(app) as client:
                assert value(await scrape(client), "devdir_db_pool_size") == 5
    finally:
        for app in apps:
            await app.state.feed.engine.dispose()


ROWS = "devdir_bulk_rows_total"
IMPORTS = "devdir_bulk_import_duration_seconds_count"


async def test_bulk_rows_are_counted_by_mode_once_committed(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    assert (await bulk(client, "json", people(30))).status_code == 201
    assert (await bulk(client, "csv", people(20, start=20), on_conflict="skip")).status_code == 201  # 10 taken
    assert (await bulk(client, "ndjson", people(5, start=45), on_conflict="update")).status_code == 201
    assert (await bulk(client, "json", people(3))).status_code == 409  # rolled back: not counted
    after = await scrape(client)
    assert moved(before, after, ROWS, operation="import", on_conflict="error") == 30
    assert moved(before, after, ROWS, operation="import", on_conflict="skip") == 20
    assert moved(before, after, ROWS, operation="import", on_conflict="update") == 5
    assert moved(before, after, IMPORTS, on_conflict="error") == 1
    assert moved(before, after, IMPORTS, on_conflict="skip") == 1
    assert moved(before, after, IMPORTS, on_conflict="update") == 1

    listed = (await client.get("/api/developers", params={"limit": 4})).json()["items"]
    ids = [developer["id"] for developer in listed]
    changes = [{"id": developer_id, "specialty": "changed"} for developer_id in ids]
    assert (await client.patch("/api/developers", json=changes)).status_code == 200
    deleted = await client.post("/api/developers/bulk-delete", json={"ids": [*ids[:3], 10**9]})
    assert deleted.status_code == 200, deleted.text
    last = await scrape(client)
    assert moved(after, last, ROWS, operation="update", on_conflict="") == 4
    assert moved(after, last, ROWS, operation="delete", on_conflict="") == 3  # the missing id deleted nothing
    assert moved(after, last, ROWS, operation="import", on_conflict="error") == 0


async def test_each_change_event_is_timed_once_as_it_is_fanned_out(client: httpx.AsyncClient) -> None:
    before = await listening(client)
    await create(client, name="Ada", email="ada@example.com", specialty="math")
    delivered = "devdir_change_feed_events_delivered_total"
    # A deadline, not a measurement: the feed holds the event back while any transaction of the cluster that
    # holds a transaction id is open, another test run's included (tests/developers/feed_client.py).
    deadline = time.monotonic() + WAIT
    while not moved(before, after := await scrape(client), delivered) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    assert moved(before, after, delivered) == 1
    assert moved(before, after, "devdir_change_feed_lag_seconds_count") == 1
    assert moved(before, after, "devdir_change_feed_lag_seconds_sum") >= 0


async def test_an_unreachable_database_leaves_the_jobs_out_of_a_scrape() -> None:
    app = unreachable_app()
    try:
        async with serve(app) as client:
            samples = await scrape(client)
        assert not any(name == "devdir_import_jobs" for name, _ in samples)
        assert value(samples, "devdir_db_pool_size") > 0  # the rest of the scrape is there
    finally:
        await app.state.feed.engine.dispose()
