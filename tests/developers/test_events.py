"""The change feed, followed over real sockets: what each write emits, filters, resuming, the order of
overlapping transactions, WebSocket and SSE alike, keepalives, slow subscribers, and what a stream holds."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
import pytest
from sqlalchemy.engine import make_url
from websockets.exceptions import ConnectionClosed, InvalidStatus

from service.app import create_app
from service.core.database_urls import backend_of
from service.core.settings import Settings
from service.developers.bulk.parsers import CHUNK_ROWS, FIRST_CHUNK_ROWS
from service.developers.events import retention
from service.developers.events.feed import Feed
from service.developers.events.schemas import Resync
from service.developers.events.store import Audience
from tests import database
from tests.client import assert_problem, token
from tests.database import connect, fetch, fetchval, query, run_sql
from tests.developers.api import bulk, create, create_as_event, people
from tests.developers.feed_client import (
    END,
    Running,
    bearer,
    close_code,
    cursor,
    receive,
    refused,
    running,
    scopeless_token,
    socket,
    sse,
    subscribed_socket,
    subscribers,
    ws_event,
)
from tests.polling import WAIT, until
from tests.postgresql_only import COPY_CHUNKS, LISTEN, OUTBOX_XIDS, ROLE_LIMIT, TIMESTAMPTZ
from tests.server import served

ADA = {"name": "Ada Lovelace", "email": "ada@example.com", "specialty": "mathematics"}
GRACE = {"name": "Grace Hopper", "email": "grace@example.com", "specialty": "compilers"}
QUIET = 0.5  # how long a test watches for an event that must not come


@pytest.fixture(autouse=True)
async def empty(database_url: str) -> AsyncIterator[None]:
    """No developers, no events, no retention horizon, before and after each test (the database is shared)."""
    reset = ("developers", "developer_events", "developer_events_horizon")
    await database.empty(database_url, *reset)
    yield
    await database.empty(database_url, *reset)


@pytest.fixture
async def run(settings: Settings) -> AsyncIterator[Running]:
    async with running(settings) as served:
        yield served


async def insert(database_url: str, n: int, specialty: str = "sql", start: int = 0) -> None:
    """n single-row inserts, each its own statement and transaction, outside the API."""
    statement = "INSERT INTO developers (name, email, specialty) VALUES (:name, :email, :specialty)"
    for i in range(start, start + n):
        await query(database_url, statement, name=f"Row {i}", email=f"r{i}@x.io", specialty=specialty)


# 1. Single-row writes


async def test_post_patch_delete_each_arrive_as_one_event(run: Running) -> None:
    async with sse(run) as stream:
        created = await create(run.api, **ADA)
        event = await stream.event()
        assert event["op"] == "created"
        # The same JSON as the REST answer, with the ETag a GET answers for this version.
        etag = (await run.api.get(f"/api/developers/{created['id']}")).headers["etag"]
        assert event["developer"] == created | {"etag": etag}
        assert (event["developer_id"], event["specialty"], event["bulk"]) == (created["id"], "mathematics", None)

        response = await run.api.patch(f"/api/developers/{created['id']}", json={"specialty": "poetry"})
        assert response.status_code == 200, response.text
        updated = response.json()
        event = await stream.event()
        assert event["op"] == "updated"
        assert event["developer"] == updated | {"etag": response.headers["etag"]}
        assert response.headers["etag"] == (await run.api.get(f"/api/developers/{created['id']}")).headers["etag"]
        assert (event["developer_id"], event["specialty"]) == (created["id"], "poetry")

        assert (await run.api.delete(f"/api/developers/{created['id']}")).status_code == 204
        event = await stream.event()
        assert event["op"] == "deleted"
        assert event["developer"] is None
        assert (event["developer_id"], event["specialty"]) == (created["id"], "poetry")
        await stream.quiet(QUIET)  # one event per write, no more


@TIMESTAMPTZ
async def test_the_developer_in_an_event_is_the_api_s_json_whatever_the_writer_s_time_zone(
    run: Running, database_url: str
) -> None:
    conn = await connect(database_url)
    try:
        async with sse(run) as stream:
            await conn.execute("SET TimeZone = 'Asia/Kolkata'")
            await conn.execute("INSERT INTO developers (name, email, specialty) VALUES ('T', 't@x.io', 'tz')")
            await conn.execute(
                "UPDATE developers SET name = 'U', updated_at = now(), version = version + 1 WHERE email = 't@x.io'"
            )
            created, updated = await stream.events(2)
    finally:
        await conn.close()
    response = await run.api.get(f"/api/developers/{created['developer_id']}")
    answer = response.json()
    assert updated["developer"] == answer | {"etag": response.headers["etag"]}
    assert created["developer"]["created_at"] == answer["created_at"]
    assert answer["created_at"].endswith("Z")


async def test_event_ids_are_increasing_cursors(run: Running) -> None:
    async with sse(run) as stream:
        for person in (ADA, GRACE):
            await create_as_event(run.api, **person)
        first, second = await stream.events(2)
    assert cursor(first["id"]) < cursor(second["id"])
    assert [e["developer"]["email"] for e in (first, second)] == [ADA["email"], GRACE["email"]]


# 2. Bulk work


@COPY_CHUNKS
async def test_a_bulk_import_arrives_as_one_summary_per_copy_chunk(run: Running, database_url: str) -> None:
    rows = 25_000
    async with sse(run) as stream:
        response = await bulk(run.api, "ndjson", people(rows))
        assert response.status_code == 201, response.text
        assert response.json()["created"] == rows
        # Every chunk the import COPYed is one statement, so one event; count them in the outbox.
        stored = await fetchval(database_url, "SELECT count(*) FROM developer_events")
        events = await stream.events(stored)
        await stream.quiet(QUIET)  # and nothing more: never an event per row
    # The first chunk holds at least FIRST_CHUNK_ROWS rows and each later one, but the last, CHUNK_ROWS.
    assert 2 <= len(events) <= 1 + -(-(rows - FIRST_CHUNK_ROWS) // CHUNK_ROWS)
    assert {e["op"] for e in events} == {"bulk"}
    assert all(e["developer"] is None and e["developer_id"] is None and e["specialty"] is None for e in events)
    summaries = [e["bulk"] for e in events]
    counts = [s["count"] for s in summaries]
    assert sum(counts) == rows
    assert counts[0] >= FIRST_CHUNK_ROWS
    assert all(c >= CHUNK_ROWS for c in counts[1:-1])
    assert {s["operation"] for s in summaries} == {"created"}
    assert {tuple(s["specialties"]) for s in summaries} == {("imported",)}
    # The chunks tile the ids the import wrote, in order; the ids are listed only up to 1,000.
    assert summaries[0]["first_id"] == 1
    assert summaries[-1]["last_id"] == rows
    for before, after in itertools.pairwise(summaries):
        assert after["first_id"] == before["last_id"] + 1
    for s in summaries:
        assert s["last_id"] - s["first_id"] + 1 == s["count"]
        assert s["ids"] == (list(range(s["first_id"], s["last_id"] + 1)) if s["count"] <= 1000 else None)
    # One transaction: one xid, events in the order they were written.
    assert len({cursor(e["id"])[0] for e in events}) == 1
    assert [cursor(e["id"]) for e in events] == sorted(cursor(e["id"]) for e in events)


async def test_a_batch_update_and_a_bulk_delete_each_arrive_as_one_event(run: Running) -> None:
    made = [
        await create_as_event(run.api, name=f"Dev {i}", email=f"d{i}@x.io", specialty=s) for i, s in enumerate("abc")
    ]
    ids = [d["id"] for d in made]
    async with sse(run) as stream:
        response = await run.api.patch("/api/developers", json=[{"id": i, "name": f"Renamed {i}"} for i in ids])
        assert response.status_code == 200, response.text
        event = await stream.event()
        assert event["op"] == "bulk"
        assert event["developer"] is None
        assert event["bulk"] == {
            "operation": "updated",
            "count": 3,
            "first_id": ids[0],
            "last_id": ids[-1],
            "ids": ids,
            "specialties": ["a", "b", "c"],
        }

        response = await run.api.post("/api/developers/bulk-delete", json={"ids": [ids[0], ids[2], 999]})
        assert response.status_code == 200, response.text
        event = await stream.event()
        assert event["op"] == "bulk"
        assert event["bulk"] == {
            "operation": "deleted",
            "count": 2,
            "first_id": ids[0],
            "last_id": ids[2],
            "ids": [ids[0], ids[2]],
            "specialties": ["a", "c"],
        }
        await stream.quiet(QUIET)


# 3. Rolled-back writes


async def test_a_rolled_back_write_emits_nothing(run: Running) -> None:
    ada = await create_as_event(run.api, **ADA)
    rows = 12_000  # far more than the first chunk, and than one read of the body: chunks are written before the end
    async with sse(run) as stream:
        # A conflicting insert.
        assert_problem(await run.api.post("/api/developers", json={**ADA, "name": "Again"}), 409)
        # An import whose first chunks were COPYed (their summaries written) before a bad row ended it.
        bad = people(rows)
        bad[-100]["email"] = "not-an-email"
        assert_problem(await bulk(run.api, "ndjson", bad), 400)
        # An import whose chunks were written before an email already taken was found.
        clash = [*people(rows, start=50_000), {**ADA, "name": "Clash"}]
        assert_problem(await bulk(run.api, "ndjson", clash), 409)
        # A batch update that wrote its statement, then found an id naming no developer.
        items = [{"id": ada["id"], "name": "Renamed"}, {"id": 424242, "name": "Nobody"}]
        assert_problem(await run.api.patch("/api/developers", json=items), 404)

        grace = await create_as_event(run.api, **GRACE)
        event = await stream.event()  # the next event is the successful write's: nothing came before it
        assert (event["op"], event["developer"]) == ("created", grace)
        await stream.quiet(QUIET)
    # The failed writes did write events (numbers were drawn for them), and took them back with everything else:
    # at least one per import, and one for the batch update on PostgreSQL (its statement trigger writes it with the
    # UPDATE; on MariaDB the service finds the missing id before it writes the event), after Ada's event (1).
    drawn = 3 if backend_of(run.database_url) == "postgresql" else 2
    assert cursor(event["id"])[1] >= 1 + drawn + 1
    assert grace["id"] > ada["id"] + 2 * FIRST_CHUNK_ROWS


# 4. Filtering by specialty


async def test_a_specialty_filter_passes_only_events_that_touch_it(run: Running) -> None:
    async def writes() -> None:
        go = await create_as_event(run.api, name="Go One", email="go1@x.io", specialty="go")  # yes
        rust = await create_as_event(run.api, name="Rust One", email="rust1@x.io", specialty="rust")  # no
        await run.api.patch(f"/api/developers/{rust['id']}", json={"name": "Rust Two"})  # no
        await run.api.patch(f"/api/developers/{rust['id']}", json={"specialty": "go"})  # yes: now go
        await run.api.patch(f"/api/developers/{go['id']}", json={"specialty": "rust"})  # yes: was go
        assert (await bulk(run.api, "json", people(3, specialty="rust"))).status_code == 201  # no
        mixed = [*people(2, start=100, specialty="rust"), *people(2, start=200, specialty="go")]
        assert (await bulk(run.api, "json", mixed)).status_code == 201  # yes: among its specialties
        many = [{"name": f"N {i}", "email": f"many{i}@x.io", "specialty": f"s{i:03d}"} for i in range(101)]
        assert (await bulk(run.api, "json", many)).status_code == 201  # yes: too many to list, so any
        await run.api.delete(f"/api/developers/{rust['id']}")  # yes: a go developer gone
        await create_as_event(run.api, name="Java One", email="java1@x.io", specialty="java")  # no

    async with sse(run, {"specialty": "go"}) as filtered, sse(run) as everything:
        await writes()
        all_events = await everything.events(10)
        got = await filtered.events(6)
        await filtered.quiet(QUIET)
    assert [e["op"] for e in got] == ["created", "updated", "updated", "bulk", "bulk", "deleted"]
    assert [e["specialty"] for e in got] == ["go", "go", "rust", None, None, "go"]
    assert "go" in got[3]["bulk"]["specialties"]
    assert got[4]["bulk"]["specialties"] is None
    assert [e["id"] for e in got] == [e["id"] for e in all_events if e in got]

    # A replay applies the same filter.
    async with sse(run, {"specialty": "go", "after": all_events[0]["id"]}) as replay:
        assert await replay.events(5) == got[1:]


# 5. Resuming


async def test_resuming_after_a_cursor_replays_what_followed_then_continues_live(run: Running) -> None:
    async with sse(run) as live:
        for i in range(4):
            await create_as_event(run.api, name=f"Dev {i}", email=f"d{i}@x.io", specialty="x")
        seen = await live.events(4)
        async with sse(run, {"after": seen[1]["id"]}) as resumed:
            assert await resumed.events(2) == seen[2:]
            later = await create_as_event(run.api, **ADA)
            event = await resumed.event()
            assert event["developer"] == later
            assert event == await live.event()
            await resumed.quiet(QUIET)
        # From the start of the outbox, and from its newest event.
        async with sse(run, {"after": "0-0"}) as everything:
            assert await everything.events(5) == [*seen, event]
        async with sse(run, {"after": event["id"]}) as newest:
            await newest.quiet(QUIET)


async def test_last_event_id_wins_over_after(run: Running) -> None:
    async with sse(run) as live:
        for i in range(3):
            await create_as_event(run.api, name=f"Dev {i}", email=f"d{i}@x.io", specialty="x")
        seen = await live.events(3)
    async with sse(run, {"after": seen[0]["id"]}, headers={"Last-Event-ID": seen[1]["id"]}) as resumed:
        assert await resumed.event() == seen[2]
        await resumed.quiet(QUIET)


@pytest.mark.parametrize(
    "value",
    ["abc", "1", "1-", "-1", "1-2-3", "1 -2", "01-x", "1" * 21 + "-1", "1-" + "9" * 20, "1-9223372036854775808"],
)
async def test_a_malformed_cursor_is_a_400(run: Running, value: str) -> None:
    body = assert_problem(await refused(run, {"after": value}), 400)
    assert "after" in str(body)
    body = assert_problem(await refused(run, headers={"Last-Event-ID": value}), 400)
    assert "Last-Event-ID" in str(body)
    assert await close_code(run, f"after={quote(value)}") == 4400


@OUTBOX_XIDS
async def test_a_cursor_below_the_retention_horizon_is_a_410(run: Running, database_url: str) -> None:
    async with sse(run) as live:
        for i in range(3):
            await create_as_event(run.api, name=f"Dev {i}", email=f"d{i}@x.io", specialty="x")
        seen = await live.events(3)
    xid, number = cursor(seen[1]["id"])
    await run_sql(database_url, f"INSERT INTO developer_events_horizon (xid, id) VALUES ('{xid}', {number})")

    for where in ({"after": seen[0]["id"]}, {"after": "0-0"}):
        body = assert_problem(await refused(run, where), 410)
        assert "EVENTS_RETENTION_HOURS" in body["detail"]
    assert_problem(await refused(run, headers={"Last-Event-ID": seen[0]["id"]}), 410)
    assert await close_code(run, f"after={seen[0]['id']}") == 4410
    # At the horizon itself nothing is missing.
    async with sse(run, {"after": seen[1]["id"]}) as resumed:
        assert await resumed.event() == seen[2]
    async with subscribed_socket(run, f"after={seen[1]['id']}") as ws:
        assert await ws_event(ws) == seen[2]


@OUTBOX_XIDS
async def test_retention_moves_the_horizon_to_the_newest_event_it_deleted(run: Running, database_url: str) -> None:
    async with sse(run) as live:
        for i in range(3):
            await create_as_event(run.api, name=f"Dev {i}", email=f"d{i}@x.io", specialty="x")
        seen = await live.events(3)
    await run_sql(
        database_url,
        f"UPDATE developer_events SET at = now() - interval '48 hours' WHERE id <= {cursor(seen[1]['id'])[1]}",
    )
    conn = await connect(database_url)
    try:
        assert await retention.delete_expired(conn, 24) == 2
        assert await retention.delete_expired(conn, 24) == 0
    finally:
        await conn.close()
    horizon = await fetch(database_url, "SELECT xid::text, id FROM developer_events_horizon")
    assert [(int(x), i) for x, i in horizon] == [cursor(seen[1]["id"])]

    assert_problem(await refused(run, {"after": seen[0]["id"]}), 410)
    assert await close_code(run, f"after={seen[0]['id']}") == 4410
    async with sse(run, {"after": seen[1]["id"]}) as resumed:
        assert await resumed.event() == seen[2]


# 6. Order


@OUTBOX_XIDS
async def test_events_follow_transaction_order_even_when_commits_cross(run: Running, database_url: str) -> None:
    """A and B overlap: A writes first (its transaction id, and its event's id, are the lower ones), B writes
    later but commits first.

    A plain sequence cursor ("every event with id > the last one served") gets this wrong: once B commits, a
    reader sees B's event but not A's (uncommitted, invisible), serves B and moves its cursor past it; when A
    commits, its event has a lower id than the cursor, and is skipped for ever, by every live subscriber and
    every resume. The feed instead holds B's event back while A, an older transaction, is open, then serves A's
    event before B's, so a cursor never passes an event that can still appear.
    """
    a, b = await connect(database_url), await connect(database_url)
    try:
        async with sse(run) as stream:
            transaction_a = a.transaction()
            await transaction_a.start()
            await a.execute("INSERT INTO developers (name, email, specialty) VALUES ('A', 'a@x.io', 'order')")
            async with b.transaction():
                await b.execute("INSERT INTO developers (name, email, specialty) VALUES ('B', 'b@x.io', 'order')")
            committed = await fetch(database_url, "SELECT developer_id, xid::text FROM developer_events")
            assert len(committed) == 1  # B's event is there for any reader to see

            await stream.quiet(QUIET)  # yet it is not served while A is open

            await transaction_a.commit()
            first, second = await stream.events(2)
            await stream.quiet(QUIET)
    finally:
        await a.close()
        await b.close()
    assert [first["developer"]["name"], second["developer"]["name"]] == ["A", "B"]
    assert cursor(first["id"]) < cursor(second["id"])
    assert first["developer_id"] < second["developer_id"]  # a sequence gives A the lower number too
    assert int(committed[0]["xid"]) == cursor(second["id"])[0]

    # Resuming after A's event replays B's: the cursor from A never skips it.
    async with sse(run, {"after": first["id"]}) as resumed:
        assert await resumed.event() == second


@OUTBOX_XIDS
async def test_an_open_transaction_anywhere_in_the_cluster_holds_events_back(run: Running, pg_server: str) -> None:
    """The price of the order: an event waits for every older transaction that holds a transaction id, and
    transaction ids (and snapshots) are the cluster's, not the database's: a writer in another database of the
    same server, however unrelated, holds the feed back for as long as its transaction stays open."""
    other = await connect(pg_server)  # the server's maintenance database, not the service's
    try:
        async with sse(run) as stream:
            elsewhere = other.transaction()
            await elsewhere.start()
            await other.fetchval("SELECT pg_current_xact_id()")  # what any write does first
            made = await create_as_event(run.api, **ADA)
            await stream.quiet(QUIET)
            await elsewhere.rollback()
            assert (await stream.event())["developer"] == made
    finally:
        await other.close()


# 7. WebSocket


async def test_websocket_with_the_token_in_a_header_or_as_a_subprotocol(run: Running) -> None:
    async with (
        subscribed_socket(run) as header,
        subscribed_socket(run, subprotocols=["bearer", token("viewer")]) as subprotocol,
        sse(run) as stream,
    ):
        assert header.subprotocol is None
        assert subprotocol.subprotocol == "bearer"
        made = await create_as_event(run.api, **ADA)
        await run.api.patch(f"/api/developers/{made['id']}", json={"name": "Ada King"})
        more = [await create_as_event(run.api, name=f"Dev {i}", email=f"d{i}@x.io", specialty="x") for i in range(2)]
        await run.api.post("/api/developers/bulk-delete", json={"ids": [d["id"] for d in more]})
        await run.api.delete(f"/api/developers/{made['id']}")
        over_sse = await stream.events(6)
        assert [e["op"] for e in over_sse] == ["created", "updated", "created", "created", "bulk", "deleted"]
        assert [await ws_event(header) for _ in range(6)] == over_sse
        assert [await ws_event(subprotocol) for _ in range(6)] == over_sse


async def test_an_idle_websocket_gets_pings(settings: Settings) -> None:
    async with running(settings, events_keepalive_seconds=0.1) as run, subscribed_socket(run) as ws:
        assert await receive(ws) == {"op": "ping"}
        assert await receive(ws) == {"op": "ping"}


@pytest.mark.parametrize(
    "how",
    [
        {"headers": {}},
        {"headers": {"Authorization": "Bearer not-a-token"}},
        {"headers": {"Authorization": f"Bearer {token(secret='another-signing-key-of-forty-characters!')}"}},
        {"subprotocols": ["bearer", token(secret="another-signing-key-of-forty-characters!")]},
        {"subprotocols": ["bearer"]},
        {"headers": {"Authorization": f"Bearer {scopeless_token()}"}},
        {"subprotocols": ["bearer", scopeless_token()]},
    ],
    ids=[
        "none",
        "garbage",
        "foreign-header",
        "foreign-subprotocol",
        "subprotocol-without-token",
        "no-scope",
        "no-scope-subprotocol",
    ],
)
async def test_a_websocket_without_a_valid_token_is_refused_at_the_handshake(run: Running, how: dict[str, Any]) -> None:
    with pytest.raises(InvalidStatus) as refusal:
        async with socket(run, **how):
            pass
    assert refusal.value.response.status_code == 403
    assert not run.feed.subscriptions


async def test_sse_needs_a_valid_token_with_the_read_scope(run: Running) -> None:
    async with httpx.AsyncClient(base_url=run.url) as anonymous:
        assert_problem(await anonymous.get("/api/developers/events"), 401)
        foreign = token(secret="another-signing-key-of-forty-characters!")
        headers = {"Authorization": f"Bearer {foreign}"}
        assert_problem(await anonymous.get("/api/developers/events", headers=headers), 401)
        # No role lacks developers:read; a token without it is refused all the same.
        headers = {"Authorization": f"Bearer {scopeless_token()}"}
        assert_problem(await anonymous.get("/api/developers/events", headers=headers), 403)
    async with sse(run, role="viewer") as stream:  # reading developers is all the feed needs
        made = await create_as_event(run.api, **ADA)
        assert (await stream.event())["developer"] == made


# 8. Keepalive


async def test_an_idle_sse_stream_gets_keepalive_comments(settings: Settings) -> None:
    async with running(settings, events_keepalive_seconds=0.1) as run, sse(run) as stream:
        for _ in range(2):
            message = await stream.message(keepalives=True)
            assert message.comments == ["keepalive"]
            assert (message.id, message.event, message.data) == (None, None, None)


# 9. Slow subscribers


async def test_a_subscriber_that_falls_behind_gets_a_resync_and_loses_nothing(settings: Settings) -> None:
    """Over a socket, a client that stops reading holds the server up only once the kernel's and the server's
    buffers are full (megabytes of events): the subscriber that does not read is the feed's own generator,
    suspended after its first event, which is exactly where a blocked send leaves a stream's."""
    writes = 50
    async with running(settings, events_queue_size=5, events_keepalive_seconds=60.0) as run, sse(run) as reader:
        slow = run.feed.events(None, Audience(specialty=None, viewer=None))
        first = asyncio.create_task(anext(slow))
        await subscribers(run.feed, 2)
        seen = []
        for i in range(writes):
            await create_as_event(run.api, name=f"Dev {i}", email=f"d{i}@x.io", specialty="x")
            seen.append(await reader.event())  # the reader keeps up: the feed hands it one event at a time

        assert (await first).event.id == seen[0]["id"]
        resync = await anext(slow)
        assert resync == Resync(after=seen[0]["id"], detail=resync.detail)
        with pytest.raises(StopAsyncIteration):
            await anext(slow)
        await subscribers(run.feed, 1)  # the slow one is gone; the reader goes on

        async with sse(run, {"after": resync.after}) as resumed:
            assert await resumed.events(writes - 1) == seen[1:]
            await resumed.quiet(QUIET)


async def commit_at_once(database_url: str, count: int) -> None:
    """`count` developers B0, B1, ... in one transaction: their events reach the feed in one read."""
    rows = (f"INSERT INTO developers (name, email, specialty) VALUES ('B{i}', 'b{i}@x.io', 'x')" for i in range(count))
    await run_sql(database_url, "BEGIN", *rows, "COMMIT")


async def test_a_burst_larger_than_the_queue_is_caught_up_from_the_outbox(
    settings: Settings, database_url: str
) -> None:
    async with running(settings, events_queue_size=5) as run, sse(run) as stream, subscribed_socket(run) as ws:
        before = await create_as_event(run.api, **ADA)
        first = await stream.event()
        assert first["developer"] == before
        assert await ws_event(ws) == first
        # Twelve events committed at once reach the feed in one read: more than a queue holds, fewer than
        # four queues. Both subscribers catch up from the outbox and stay on the live feed.
        await commit_at_once(database_url, 12)
        burst = await stream.events(12)
        assert [e["developer"]["name"] for e in burst] == [f"B{i}" for i in range(12)]
        assert [await ws_event(ws) for _ in range(12)] == burst
        after = await create_as_event(run.api, name="After", email="after@x.io", specialty="x")
        assert (await stream.event())["developer"] == after
        assert (await ws_event(ws))["developer"] == after
        assert [cursor(e["id"]) for e in burst] == sorted(cursor(e["id"]) for e in burst)


async def test_a_burst_of_more_than_four_queues_ends_an_sse_stream_with_a_resync(
    settings: Settings, database_url: str
) -> None:
    async with running(settings, events_queue_size=5) as run:
        async with sse(run) as stream, subscribed_socket(run) as ws:
            before = await create_as_event(run.api, **ADA)
            first = await stream.event()
            assert first["developer"] == before
            assert await ws_event(ws) == first
            # Thirty events committed at once reach the feed in one read: more than four queues hold.
            await commit_at_once(database_url, 30)
            message = await stream.message()
            assert message.event == "resync"
            assert message.json["op"] == "resync"
            assert message.json["after"] == first["id"]
            assert message.json["detail"]
            assert await stream.message() is END
            assert await ws_event(ws) == message.json
            with pytest.raises(ConnectionClosed):
                await receive(ws)
            assert ws.close_code == 1000
        await subscribers(run.feed, 0)
        async with sse(run, {"after": message.json["after"]}) as resumed:
            burst = await resumed.events(30)
            assert [e["developer"]["name"] for e in burst] == [f"B{i}" for i in range(30)]
            await resumed.quiet(QUIET)


# 10. What a stream holds


async def test_a_client_that_disconnects_frees_its_subscription(settings: Settings) -> None:
    # A keepalive far away: the server must notice the disconnect itself, not on its next write.
    async with running(settings, events_keepalive_seconds=60.0) as run:
        pool = run.feed.engine.sync_engine.pool
        async with sse(run) as stream, subscribed_socket(run) as ws:
            made = await create_as_event(run.api, **ADA)
            assert (await stream.event())["developer"] == made
            assert (await ws_event(ws))["developer"] == made
            assert len(run.feed.subscriptions) == 2
            assert pool.checkedout() == 0  # streaming holds no pooled connection
        await subscribers(run.feed, 0)

        # A replay borrows connections a page at a time, and gives them back.
        async with sse(run, {"after": "0-0"}) as replay:
            assert (await replay.event())["developer"] == made
            assert pool.checkedout() == 0
        await subscribers(run.feed, 0)

        # Closed without a closing handshake: the socket just goes away.
        async with subscribed_socket(run) as ws:
            ws.transport.abort()
        await subscribers(run.feed, 0)


# 11. Readiness, and the listener


@LISTEN
async def test_ready_reports_the_feed_listening(run: Running) -> None:
    response = await run.api.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["change_feed"] == "listening"


@LISTEN
async def test_events_flow_on_when_the_listener_connection_is_lost(run: Running, database_url: str) -> None:
    async with sse(run) as stream:
        ended = await fetchval(
            database_url,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'devdir change feed' AND datname = current_database()",
        )
        assert ended == 1
        made = await create_as_event(run.api, **ADA)
        assert (await stream.event())["developer"] == made
    await until(lambda: run.feed.state == "listening", "the feed to listen again")
    response = await run.api.get("/ready")
    assert response.json()["change_feed"] == "listening"


# An outage


@ROLE_LIMIT
async def test_a_refused_connection_is_a_503_and_the_feed_polls_on(settings: Settings, pg_server: str) -> None:
    """The server is up but takes no connection from the service (its connection limit): a resume, which reads
    the retention horizon through the pool, is answered as an outage (not a 500); the feed polls."""
    role = f"devdir_refused_{secrets.token_hex(4)}"
    await run_sql(pg_server, f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0')
    try:
        # Straight to the server, pooled run or not: the tests' PgBouncer logs every client in as one user.
        refused_url = make_url(settings.direct_url).set(username=role).render_as_string(hide_password=False)
        refused = {"database_url": refused_url, "database_direct_url": "", "db_pooler": "none"}
        app = create_app(msgspec.structs.replace(settings, **refused, events_poll_seconds=0.1))
        try:
            async with served(app) as url, httpx.AsyncClient(base_url=url, headers=bearer()) as api:
                await until(lambda: app.state.feed.state == "polling", "the feed to poll")
                response = await api.get("/api/developers/events", params={"after": "1-1"})
                assert_problem(response, 503)
                assert response.headers["retry-after"]
                assert app.state.feed.state == "polling"
        finally:
            await app.state.feed.engine.dispose()
    finally:
        await run_sql(pg_server, f'DROP ROLE "{role}"')


# The feed's start


@OUTBOX_XIDS
async def test_a_subscriber_that_comes_before_the_feed_has_started_misses_nothing(
    settings: Settings, database_url: str
) -> None:
    """A server answers as soon as its lifespan has started the feed, which finds where the outbox ends only
    once it reaches the database: subscribers (reconnecting clients, after a deploy) may come before that."""
    await insert(database_url, 1, specialty="before")
    (old,) = await fetch(database_url, "SELECT xid::text || '-' || id AS id FROM developer_events")
    async with running(settings) as run:
        feed = run.feed
    # A feed not started (the app's lifespan is over), then started by hand, on an engine with an empty pool.
    await feed.engine.dispose()
    pool = feed.engine.sync_engine.pool
    fresh = Feed(feed.engine, msgspec.structs.replace(settings, events_keepalive_seconds=30.0))
    everything = Audience(specialty=None, viewer=None)
    live, resumed = fresh.events(None, everything), fresh.events(cursor(old["id"]), everything)
    waiting = [asyncio.create_task(anext(live)), asyncio.create_task(anext(resumed))]
    # The subscriber from now has read where the outbox ends (the only use of the pool so far), and both wait.
    await until(lambda: pool.checkedin() == 1 and pool.checkedout() == 0, "the subscriber to look at the outbox")
    assert not any(task.done() for task in waiting)
    await insert(database_url, 1, specialty="after", start=1)
    await fresh.start()
    try:
        first_live, first_resumed = await asyncio.wait_for(asyncio.gather(*waiting), WAIT)
        assert first_resumed.event.specialty == "after"
        # From now may begin a little early (where the outbox ends is where its servable events end), never late.
        if first_live.event.specialty == "before":
            first_live = await asyncio.wait_for(anext(live), WAIT)
        assert first_live.event.specialty == "after"
    finally:
        for task in waiting:
            task.cancel()
        await live.aclose()
        await resumed.aclose()
        await fresh.stop()
        await feed.engine.dispose()
