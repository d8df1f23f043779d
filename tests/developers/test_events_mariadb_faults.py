"""The change feed on MariaDB when things go wrong: the feed's and the pool's connections KILLed under load, and
the server itself killed and started again. Each subscriber must receive exactly the stamped events of the
outbox, in order, once each; the outbox must hold exactly the committed transactions' writes.

Writes here are plain SQL transactions of one to three writes, some held open a moment so that commits cross
(the case a reader following ids gets wrong). Subscribers follow as tests.developers.feed_faults_support's do.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.app import create_app
from service.core.settings import Settings
from tests import mariadb
from tests.client import TEST_SECRET
from tests.developers.feed_faults_support import (
    Follower,
    Outboxed,
    compare,
    keep_following,
    running,
)
from tests.developers.feed_mariadb import (
    ConnectionKiller,
    SQLLedger,
    outbox,
    reset,
    unstamped,
    write_sql,
)
from tests.mariadb_server import PrivateServer, private_server
from tests.polling import until
from tests.server import served

POLL = 0.2  # EVENTS_POLL_SECONDS of the in-process apps


def feed_settings(url: str) -> Settings:
    return Settings(
        database_url=url,
        secret_key=TEST_SECRET,
        db_pool_size=5,
        db_max_overflow=5,
        events_poll_seconds=POLL,
        events_keepalive_seconds=1.0,
    )


def followers() -> list[Follower]:
    return [Follower("sse-1"), Follower("sse-2"), Follower("ws-header"), Follower("ws-subprotocol")]


def following(url: str, followers: list[Follower]) -> list[object]:
    return [
        keep_following(url, followers[0], "0-0"),
        keep_following(url, followers[1], "0-0"),
        keep_following(url, followers[2], "0-0", socket=True),
        keep_following(url, followers[3], "0-0", socket=True, subprotocol=True),
    ]


async def settled(url: str, followers: list[Follower]) -> list[Outboxed]:
    """Once every committed event is stamped, the outbox; and every follower has reached its last event."""
    await until(lambda: _none_unstamped(url), "every committed event to be stamped")
    expected = await outbox(url)
    for follower in followers:
        await follower.reach(expected[-1].id, 30)
    return expected


async def _none_unstamped(url: str) -> bool:
    return await unstamped(url) == 0


def assert_exactly(followers: list[Follower], expected: list[Outboxed], ledger: SQLLedger) -> None:
    have = Counter(e.key for e in expected)
    committed = Counter(ledger.committed)
    assert not committed - have, f"committed writes without an event: {list((committed - have).items())[:5]}"
    extra = have - committed
    assert not extra - Counter(ledger.unknown), f"events of no committed write: {list(extra.items())[:5]}"
    for follower in followers:
        assert follower.ended is None, f"{follower.name}: {follower.ended}"
        delivery = compare(follower, expected)
        assert (delivery.duplicates, delivery.gaps, delivery.unexpected, delivery.out_of_order) == (0, 0, 0, 0), (
            delivery
        )
        assert [e["id"] for e in follower.events] == [e.id for e in expected], follower.name


def report(what: str, followers: list[Follower], expected: list[Outboxed], ledger: SQLLedger, extra: str) -> None:
    deliveries = [compare(f, expected) for f in followers]
    crossed = sum(1 for a, b in itertools.pairwise(expected) if int(a.id.split("-")[1]) > int(b.id.split("-")[1]))
    print(
        f"\nmariadb feed {what}: committed writes {len(ledger.committed)}, unknown {len(ledger.unknown)}, events "
        f"{len(expected)} ({crossed} served before a lower id), delivered "
        f"{'/'.join(str(d.delivered) for d in deliveries)}, duplicates {sum(d.duplicates for d in deliveries)}, "
        f"gaps {sum(d.gaps for d in deliveries)}, resyncs {[f.resyncs for f in followers]}; {extra}"
    )


async def test_killed_feed_and_pool_connections_lose_and_repeat_no_event(mariadb_url: str) -> None:
    await reset(mariadb_url)
    app = create_app(feed_settings(mariadb_url))
    feed = app.state.feed
    tag, ledger, stop = secrets.token_hex(4), SQLLedger(), asyncio.Event()
    subscribers = followers()
    async with served(app) as url, running(*following(url, subscribers), followers=subscribers):  # type: ignore[arg-type]
        writers = [asyncio.create_task(write_sql(mariadb_url, ledger, n, tag, stop)) for n in range(4)]
        await until(lambda: len(ledger.connection_ids) == 4, "the writers to connect")
        killer = ConnectionKiller(mariadb_url, ledger.connection_ids)
        killing = asyncio.create_task(killer.run(stop, lambda: feed.outbox.connection_id))
        await asyncio.sleep(4)
        stop.set()
        await asyncio.gather(*writers, killing)
        expected = await settled(mariadb_url, subscribers)
        await until(lambda: feed.state == "listening", "the feed to have its own connection again")
    extra = f"feed connection killed {killer.feed_kills} times, other app connections {killer.other_kills}"
    report("kills", subscribers, expected, ledger, extra)
    assert killer.feed_kills >= 3
    assert not ledger.unknown  # the writers' connections were spared
    assert_exactly(subscribers, expected, ledger)
    await reset(mariadb_url)


@pytest.fixture
def private(tmp_path: Path) -> Iterator[tuple[PrivateServer, str]]:
    """A private MariaDB server and a migrated database on it."""
    with private_server(tmp_path) as server, mariadb.fresh_database(server.url) as url:
        yield server, url


async def test_a_server_restart_loses_and_repeats_no_event(private: tuple[PrivateServer, str]) -> None:
    """The server is killed (SIGKILL, no shutdown) twice under load and started again on the same port: a
    private server, never the shared one."""
    server, url = private
    app = create_app(feed_settings(url))
    feed = app.state.feed
    tag, ledger, stop = secrets.token_hex(4), SQLLedger(), asyncio.Event()
    subscribers = followers()
    async with served(app) as base, running(*following(base, subscribers), followers=subscribers):  # type: ignore[arg-type]
        writers = [asyncio.create_task(write_sql(url, ledger, n, tag, stop)) for n in range(4)]
        restarts = 0
        for _ in range(2):
            await asyncio.sleep(1.5)
            await asyncio.to_thread(server.crash)
            await until(lambda: feed.state == "polling", "the feed to notice it has lost its connection")
            await asyncio.sleep(0.5)  # writers and the feed fail and retry meanwhile
            await asyncio.to_thread(server.start)
            restarts += 1
        await asyncio.sleep(1.5)
        stop.set()
        await asyncio.gather(*writers)
        expected = await settled(url, subscribers)
        await until(lambda: feed.state == "listening", "the feed to have its own connection again")
    report("restarts", subscribers, expected, ledger, f"server killed and started {restarts} times")
    assert_exactly(subscribers, expected, ledger)
