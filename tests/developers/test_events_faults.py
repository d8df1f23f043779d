"""The change feed when things go wrong: database backends terminated under load, subscribers that drop and come
back, and writes through one replica followed on another. Each subscriber must receive exactly the committed
events of the outbox, in order, once each, and nothing of a write that failed.

The subscribers here follow as the contract asks of a client: a resync (the subscriber fell EVENTS_QUEUE_SIZE
events behind) is answered by reconnecting from the last event received, so what counts is what each one
received over all its connections. A resync is normal when events arrive in a burst: they are held back while
any older transaction with a transaction id is open anywhere on the server (another database's included), then
served at once.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.core.settings import Settings
from tests.client import token
from tests.database import connect, fetch, fresh_database, run_sql
from tests.developers.api import encode
from tests.developers.feed_faults_support import (
    LISTENER,
    Follower,
    Killer,
    Ledger,
    Outboxed,
    compare,
    cursor,
    devdir_process,
    follow_sse,
    follow_ws,
    held_back,
    keep_following,
    latest_event,
    outbox,
    running,
    unattributed,
    write_for,
)
from tests.pgbouncer import app_settings
from tests.polling import until
from tests.postgresql_only import OUTBOX_XIDS
from tests.server import served

pytestmark = OUTBOX_XIDS

POLL = 0.2  # EVENTS_POLL_SECONDS of the in-process apps
CATCH_UP = 10 * POLL  # how long subscribers get for the last event, once it can be served and the feed listens


def feed_settings(database_url: str) -> Settings:
    return app_settings(
        database_url,
        db_pool_size=5,
        db_max_overflow=5,
        events_poll_seconds=POLL,
        events_keepalive_seconds=1.0,
    )


def assert_received_exactly(follower: Follower, expected: list[Outboxed]) -> None:
    assert follower.ended is None, f"{follower.name}: {follower.ended}"
    delivery = compare(follower, expected)
    assert (delivery.duplicates, delivery.gaps, delivery.unexpected, delivery.out_of_order) == (0, 0, 0, 0), delivery
    assert [(e["id"], e["op"]) for e in follower.events] == [(e.id, e.op) for e in expected], follower.name


async def test_killed_listener_and_pooled_connections_lose_and_repeat_no_event(database_url: str) -> None:
    app = create_app(feed_settings(database_url))
    feed = app.state.feed
    start, tag = await latest_event(database_url), secrets.token_hex(4)
    followers = [Follower("sse-1"), Follower("sse-2"), Follower("ws-header"), Follower("ws-subprotocol")]
    ledger, killer, stop = Ledger(), Killer(database_url), asyncio.Event()
    async with served(app) as url:
        jobs = [
            keep_following(url, followers[0], start),
            keep_following(url, followers[1], start),
            keep_following(url, followers[2], start, socket=True),
            keep_following(url, followers[3], start, socket=True, subprotocol=True),
        ]
        async with running(*jobs, followers=followers):
            work = [asyncio.create_task(write_for(url, ledger, n, tag, stop)) for n in range(4)]
            work.append(asyncio.create_task(killer.run(stop)))
            await asyncio.sleep(4)
            stop.set()
            await asyncio.gather(*work)
            # Every write has been answered: the outbox holds all that will ever be committed.
            expected = await outbox(database_url, start)
            waited = await held_back(database_url, start)
            await until(lambda: feed.state == "listening", lambda: f"the feed to listen (it is {feed.state!r})")
            for follower in followers:
                await follower.reach(expected[-1].id, CATCH_UP)
        listeners = await fetch(
            database_url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
            LISTENER,
        )

    deliveries = [compare(f, expected) for f in followers]
    statuses = Counter(w.status for w in ledger.failed)
    print(
        f"\nfeed faults: sent {len(ledger.writes)} writes (2xx: {len(ledger.succeeded)}, other: {len(ledger.failed)}),"
        f" events in outbox {len(expected)}, per subscriber delivered "
        f"{'/'.join(str(d.delivered) for d in deliveries)}, duplicates {sum(d.duplicates for d in deliveries)}, "
        f"gaps {sum(d.gaps for d in deliveries)}, listener terminated {killer.listener_kills} times, "
        f"writer backends terminated {killer.pooled_kills}"
    )
    print(
        f"feed faults: failed writes by status {dict(statuses)}; resyncs {[f.resyncs for f in followers]}; last "
        f"events servable {waited:.2f} s after the last write; the terminated pooled backends were doing "
        f"{dict(killer.interrupted.most_common())}"
    )

    # The faults happened, and the feed came back to listening, on one listener connection.
    assert killer.listener_kills >= 2
    assert killer.pooled_kills >= 1
    assert listeners[0][0] == 1
    assert ledger.succeeded
    # The outbox is exactly the writes answered 2xx: each has its one event, and no failed write left any.
    extra, missing = unattributed(expected, ledger)
    assert not extra, f"events of no successful write: {list(extra.items())[:5]}"
    assert not missing, f"successful writes without an event: {list(missing.items())[:5]}"
    assert 0 not in statuses, "a write got no answer at all"
    await _failed_writes_left_nothing(database_url, ledger)
    # Every subscriber received exactly the outbox, in order, once each.
    for follower in followers:
        assert_received_exactly(follower, expected)


async def _failed_writes_left_nothing(database_url: str, ledger: Ledger) -> None:
    emails, names, deleted = [], [], []
    for write in ledger.failed:
        key: Any = write.key
        if write.kind == "create":
            emails.append(key[1])
        elif write.kind == "import":
            emails.extend(key[1])
        elif write.kind == "update":
            names.append(key[2])
        else:
            deleted.append(key[1])
    rows = await fetch(
        database_url,
        "SELECT (SELECT count(*) FROM developers WHERE email = ANY($1::text[]) OR name = ANY($2::text[])),"
        " (SELECT count(*) FROM developers WHERE id = ANY($3::bigint[]))",
        emails,
        names,
        deleted,
    )
    assert rows[0][0] == 0, "a write answered with an error was committed"
    assert rows[0][1] == len(deleted), "a delete answered with an error was committed"


async def test_sse_subscriber_cut_mid_stream_resumes_with_last_event_id_exactly(database_url: str) -> None:
    app = create_app(feed_settings(database_url))
    feed = app.state.feed
    start, tag = await latest_event(database_url), secrets.token_hex(4)
    control, resumed = Follower("control"), Follower("resumed")
    ledger, stop = Ledger(), asyncio.Event()
    away: list[tuple[str, str]] = []  # (the last event before a cut, the newest in the outbox when it came back)
    async with served(app) as url, running(keep_following(url, control, start), followers=[control]):
        writers = [asyncio.create_task(write_for(url, ledger, n, tag, stop)) for n in range(2)]
        # Each time: read some events, hang up while they are still coming, stay away while writes go on, and
        # reconnect as EventSource does: the URL it started with (an older `after`) and the last id received.
        async with asyncio.timeout(60):  # events held back by an open transaction elsewhere come late, not never
            await follow_sse(url, resumed, after=start, stop_after=25)
            for _ in range(3):
                cut = resumed.last
                assert cut is not None
                assert resumed.ended is None
                await asyncio.sleep(0.3)
                away.append((cut, await latest_event(database_url)))
                await follow_sse(url, resumed, after=start, last_event_id=cut, stop_after=len(resumed.events) + 25)
        resumed.connected = asyncio.Event()
        async with running(keep_following(url, resumed, start), followers=[resumed]):
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*writers)
            expected = await outbox(database_url, start)
            await held_back(database_url, start)
            for follower in (control, resumed):
                await follower.reach(expected[-1].id, CATCH_UP)
            # The connections that were cut are gone from the feed: only the two open ones are left.
            await until(
                lambda: len(feed.subscriptions) == 2, lambda: f"2 subscriptions (there are {len(feed.subscriptions)})"
            )

    print(
        f"\nfeed resume: {len(ledger.writes)} writes, {len(expected)} events, the resumed subscriber was cut "
        f"{len(away)} times and received {len(resumed.events)}, the control {len(control.events)}; resyncs "
        f"{resumed.resyncs}/{control.resyncs}"
    )
    for before, newest in away:
        assert cursor(newest) > cursor(before), "no event was committed while the subscriber was away"
    for follower in (control, resumed):
        assert_received_exactly(follower, expected)


async def test_a_subscriber_resuming_before_the_feed_has_read_the_outbox_misses_nothing(database_url: str) -> None:
    """A client that reconnects with a cursor while the process is starting (a restart, a deploy) is served every
    event after its cursor, those committed before the feed read the outbox included."""
    tag = secrets.token_hex(4)

    def insert(n: int) -> str:
        return f"INSERT INTO developers (name, email, specialty) VALUES ('Early {n}', 'early{n}-{tag}@x.io', 's')"

    await run_sql(database_url, insert(0))
    resume_from = await latest_event(database_url)
    await run_sql(database_url, insert(1), insert(2))  # two events the client has not seen
    app = create_app(feed_settings(database_url))
    feed = app.state.feed
    follower = Follower("early")
    blocker = await connect(database_url)
    try:
        # The feed's first read of the outbox waits behind this lock: the process serves, the feed has not begun.
        block = blocker.transaction()
        await block.start()
        await blocker.execute("LOCK TABLE developer_events IN ACCESS EXCLUSIVE MODE")
        async with served(app) as url, running(follow_sse(url, follower, after=resume_from), followers=[follower]):
            await asyncio.sleep(0.2)  # the stream has begun, before the feed has read anything
            assert feed.cursor == (0, 0)
            await block.rollback()
            await run_sql(database_url, insert(3))
            expected = await outbox(database_url, resume_from)
            await held_back(database_url, resume_from)
            await follower.reach(expected[-1].id, CATCH_UP)
    finally:
        await blocker.close()
    assert len(expected) == 3
    assert_received_exactly(follower, expected)


@pytest.fixture
def replicas(pg_server: str, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """Two `devdir run` processes on one fresh database: (database URL, A's base URL, B's base URL). B never polls
    on its own (EVENTS_POLL_SECONDS is an hour): its subscribers get events only as commits notify its listener."""
    with (
        fresh_database(pg_server) as url,
        devdir_process(url, tmp_path / "a.log") as a,
        devdir_process(url, tmp_path / "b.log", EVENTS_POLL_SECONDS="3600") as b,
    ):
        yield url, a, b


@pytest.mark.slow  # runs `devdir run` twice, as two replicas
async def test_writes_through_one_replica_reach_the_other_replicas_subscribers_in_order_once(
    replicas: tuple[str, str, str],
) -> None:
    database_url, a, b = replicas
    async with httpx.AsyncClient(base_url=b, timeout=5) as probe:
        for _ in range(100):
            if (await probe.get("/ready")).json()["change_feed"] == "listening":
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("B's change feed is not listening")
    followers = [Follower("b-sse"), Follower("b-ws")]
    jobs = [follow_sse(b, followers[0], after="0-0"), follow_ws(b, followers[1], after="0-0", subprotocol=True)]
    async with running(*jobs, followers=followers):
        written = await _write_in_sequence(a, database_url)
        expected = await outbox(database_url, "0-0")
        await held_back(database_url, "0-0")
        for follower in followers:
            await follower.reach(expected[-1].id, 10)

    print(
        f"\nfeed replicas: {len(written)} writes through A, {len(expected)} events, delivered by B "
        + ", ".join(f"{f.name} {len(f.events)}" for f in followers)
    )
    assert len(expected) == len(written)
    for follower in followers:
        assert follower.resyncs == 0, follower.name
        assert_received_exactly(follower, expected)
        received = [
            (e["op"], e["developer_id"]) if e["op"] != "bulk" else ("bulk", e["bulk"]["operation"], e["bulk"]["ids"])
            for e in follower.events
        ]
        assert received == written, follower.name


async def _write_in_sequence(base: str, database_url: str) -> list[tuple[Any, ...]]:
    """Single-row creates, renames and deletes, imports, a batch update and a bulk delete through `base`, one
    after another; what each write's event must say, in order."""
    written: list[tuple[Any, ...]] = []
    ids: list[int] = []
    headers = {"Authorization": f"Bearer {token('editor')}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        for n in range(60):
            if n % 10 == 9:
                rows = [
                    {"name": f"Imported {n}-{i}", "email": f"i{n}-{i}@replicas.io", "specialty": "s"} for i in range(3)
                ]
                response = await client.post(
                    "/api/developers/bulk",
                    content=encode("ndjson", rows),
                    headers={"content-type": "application/x-ndjson"},
                )
                assert response.status_code == 201, response.text
                imported = await fetch(database_url, "SELECT id FROM developers WHERE email LIKE $1", f"i{n}-%")
                written.append(("bulk", "created", sorted(row[0] for row in imported)))
            elif n % 5 == 4 and ids:
                response = await client.patch(f"/api/developers/{ids[-1]}", json={"name": f"Renamed {n}"})
                assert response.status_code == 200, response.text
                written.append(("updated", ids[-1]))
            elif n % 7 == 6 and ids:
                gone = ids.pop(0)
                assert (await client.delete(f"/api/developers/{gone}")).status_code == 204
                written.append(("deleted", gone))
            else:
                body = {"name": f"Dev {n}", "email": f"d{n}@replicas.io", "specialty": "s"}
                response = await client.post("/api/developers", json=body)
                assert response.status_code == 201, response.text
                ids.append(response.json()["id"])
                written.append(("created", ids[-1]))
        pair = ids[:2]
        response = await client.patch("/api/developers", json=[{"id": i, "specialty": "t"} for i in pair])
        assert response.json() == {"updated": 2}
        written.append(("bulk", "updated", pair))
        response = await client.post("/api/developers/bulk-delete", json={"ids": pair})
        assert response.json() == {"deleted": 2, "not_found": []}
        written.append(("bulk", "deleted", pair))
    return written
