"""Who is shown which change events: an import job's events (`import.*`: its id, row counts, submitter) go to its
submitter and to admins only, as `GET /api/imports/{id}` does, over SSE and WebSockets, live and replayed; and a
subscriber that is not shown them still moves on past them, without a resync."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from service.core.database_urls import backend_of
from service.core.settings import Settings
from tests.database import run_sql
from tests.developers.api import create, people
from tests.developers.feed_client import (
    Running,
    SSEStream,
    caught_up,
    emptied,
    fetchrow,
    receive,
    running,
    sse,
    subscribed_socket,
    ws_event,
)
from tests.imports.api import as_user, submitted

ALICE, BOB, VIEWER, ADMIN = as_user("editor", 7), as_user("editor", 8), as_user("viewer", 6), as_user("admin", 1)
ROLES = {"alice": ALICE, "bob": BOB, "viewer": VIEWER, "admin": ADMIN}
QUIET = 0.5  # how long a test watches for an event that must not come


@pytest.fixture(autouse=True)
async def empty(database_url: str) -> AsyncIterator[None]:
    async with emptied(database_url):
        yield


def described(event: dict[str, Any]) -> str:
    """An event in a word: `import.queued 1` for a job's, `created Marker` for a developer's."""
    if event["op"].startswith("import."):
        return f"{event['op']} {event['job']['id']}"
    return f"{event['op']} {event['developer']['name']}"


async def sse_until(stream: SSEStream, last: str) -> list[str]:
    """Every event up to the one described as `last`, described."""
    seen = [described(await stream.event())]
    while seen[-1] != last:
        seen.append(described(await stream.event()))
    return seen


async def ws_until(ws: ClientConnection, last: str) -> list[str]:
    seen = [described(await ws_event(ws))]
    while seen[-1] != last:
        seen.append(described(await ws_event(ws)))
    return seen


async def two_jobs_and_two_markers(run: Running) -> None:
    """Alice's job 1 and Bob's job 2 queued, a developer anyone may see, job 1 cancelled, another developer."""
    assert await submitted(run.api, "json", people(1), headers=ALICE) == 1
    assert await submitted(run.api, "json", people(1, 1), headers=BOB) == 2
    await create(run.api, name="Marker", email="marker@x.io", specialty="x")
    assert (await run.api.delete("/api/imports/1", headers=ALICE)).json()["status"] == "cancelled"
    await create(run.api, name="End", email="end@x.io", specialty="x")


EXPECTED = {
    "alice": ["import.queued 1", "created Marker", "import.cancelled 1", "created End"],
    "bob": ["import.queued 2", "created Marker", "created End"],
    "viewer": ["created Marker", "created End"],
    "admin": ["import.queued 1", "import.queued 2", "created Marker", "import.cancelled 1", "created End"],
}


async def test_live_import_events_go_to_their_submitter_and_admins_only(settings: Settings) -> None:
    async with running(settings) as run, contextlib.AsyncExitStack() as stack:
        streams = {name: await stack.enter_async_context(sse(run, headers=h)) for name, h in ROLES.items()}
        sockets = {
            name: await stack.enter_async_context(subscribed_socket(run, headers=h)) for name, h in ROLES.items()
        }
        await two_jobs_and_two_markers(run)
        for name, expected in EXPECTED.items():
            assert await sse_until(streams[name], "created End") == expected, name
            assert await ws_until(sockets[name], "created End") == expected, name
        for stream in streams.values():
            await stream.quiet(QUIET)
        # What each was shown, it may read: the job's own route agrees.
        for name, headers in ROLES.items():
            for job_id in (1, 2):
                shown = any(e.endswith(f" {job_id}") and e.startswith("import.") for e in EXPECTED[name])
                answer = await run.api.get(f"/api/imports/{job_id}", headers=headers)
                assert answer.status_code == (200 if shown else 404), (name, job_id)


async def test_a_replay_from_a_cursor_shows_each_subscriber_what_it_was_shown_live(settings: Settings) -> None:
    async with running(settings) as run:
        await two_jobs_and_two_markers(run)
        await caught_up(run)
        for name, headers in ROLES.items():
            async with sse(run, {"after": "0-0"}, headers=headers) as replay:
                assert await sse_until(replay, "created End") == EXPECTED[name], name
                await replay.quiet(QUIET)
            async with sse(run, headers=headers | {"Last-Event-ID": "0-0"}) as replay:
                assert await sse_until(replay, "created End") == EXPECTED[name], name
            async with subscribed_socket(run, "after=0-0", headers=headers) as ws:
                assert await ws_until(ws, "created End") == EXPECTED[name], name


# The newest event's cursor: PostgreSQL orders the outbox by transaction id, MariaDB by the sequencer's stamp.
NEWEST = {
    "postgresql": "SELECT xid::text AS x, id FROM developer_events ORDER BY xid DESC, id DESC",
    "mariadb": "SELECT seq, id FROM developer_events WHERE seq IS NOT NULL ORDER BY seq DESC, id DESC",
}


async def newest_cursor(run: Running) -> str:
    row = await fetchrow(run.database_url, NEWEST[backend_of(run.database_url)])
    return f"{row[0]}-{row[1]}"


async def test_events_a_subscriber_is_not_shown_still_move_its_cursor_on(settings: Settings) -> None:
    async with running(settings, events_keepalive_seconds=0.2) as run:
        async with sse(run, headers=VIEWER) as stream, subscribed_socket(run, headers=VIEWER) as ws:
            await create(run.api, name="Seen", email="seen@x.io", specialty="x")
            seen = await stream.event()
            assert (await ws_event(ws))["id"] == seen["id"]
            await submitted(run.api, "json", people(1), headers=ALICE)  # an event the viewer is not shown
            hidden = await newest_cursor(run)
            # A later keepalive names the hidden event's cursor: an EventSource's Last-Event-ID moves on to it.
            while (message := await stream.message(keepalives=True)).id != hidden:
                assert (message.id, message.data, message.event) == (None, None, None), message
            assert message.comments == ["keepalive"]
            while (ping := await receive(ws)).get("after") != hidden:
                assert ping == {"op": "ping"}, ping
        async with sse(run, headers=VIEWER | {"Last-Event-ID": hidden}) as resumed:
            await create(run.api, name="Next", email="next@x.io", specialty="x")
            assert described(await resumed.event()) == "created Next"
            await resumed.quiet(QUIET)


async def test_events_a_subscriber_is_not_shown_never_put_it_behind(settings: Settings, database_url: str) -> None:
    # Queues of 5: more than four queues' worth of events behind ends a stream with a resync. Thirty of Alice's
    # jobs go by, then a burst of twelve developers overflows the viewer's queue: it is twelve events behind,
    # not forty-two, and catches up from the outbox.
    async with running(settings, events_queue_size=5) as run, sse(run, headers=VIEWER) as stream:
        for i in range(30):
            await submitted(run.api, "json", people(1, i), headers=ALICE)
        rows = (f"INSERT INTO developers (name, email, specialty) VALUES ('B{i}', 'b{i}@x.io', 'x')" for i in range(12))
        await run_sql(database_url, "BEGIN", *rows, "COMMIT")
        burst = [described(await stream.event()) for _ in range(12)]
        assert burst == [f"created B{i}" for i in range(12)]
        await create(run.api, name="After", email="after@x.io", specialty="x")
        assert described(await stream.event()) == "created After"  # still on the live feed: no resync
