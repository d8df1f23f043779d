"""The replica lag monitor (service.db.replicas) on a real primary and a real hot standby (tests/standby.py): a
write the standby holds back under `recovery_min_apply_delay` shows as lag until it is replayed, an idle primary
keeps a caught-up standby at 0, a stopped standby is down with no lag and recovers once started, and /metrics
reports it while /ready stays about the primary. Deadlines are generous and nothing is asserted about how fast."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from litestar import Litestar

from service.app import create_app
from service.core.settings import Settings
from service.db.replicas import ReplicaLag, Standby, WalHistory
from tests.client import TEST_SECRET, serve
from tests.database import fetchval, run_sql
from tests.polling import until
from tests.postgresql_only import STANDBYS
from tests.standby import StreamingPair, current_lsn, streaming_pair

slow = pytest.mark.slow  # starts two PostgreSQL servers of its own

IDLE_SECONDS = 3.0  # longer than the standby's apply delay and many check intervals: a growing lag would show


@pytest.fixture(scope="module")
def pair() -> Iterator[StreamingPair]:
    with streaming_pair(recovery_min_apply_delay="2s") as started:
        # No autovacuum on the primary: the idle test needs a primary that writes no WAL on its own.
        asyncio.run(run_sql(started.primary_url, "ALTER SYSTEM SET autovacuum = off", "SELECT pg_reload_conf()"))
        yield started


def _settings(pair: StreamingPair) -> Settings:
    # The pair's own servers, never the run's pooler: the monitor uses direct connections whatever the run.
    return Settings(database_url=pair.primary_url, database_replica_urls=pair.standby_url, secret_key=TEST_SECRET)


@asynccontextmanager
async def _watching(pair: StreamingPair) -> AsyncIterator[Standby]:
    """A running monitor of the pair's standby, once it has measured the standby caught up."""
    monitor = ReplicaLag(_settings(pair))
    async with monitor.lifespan(None):
        standby = monitor.standbys[0]
        await until(lambda: standby.lag_seconds == 0.0, lambda: f"the standby measured caught up: {standby}")
        yield standby


async def _write(pair: StreamingPair) -> None:
    name = f"lag-{secrets.token_hex(4)}"
    await run_sql(
        pair.primary_url,
        f"INSERT INTO developers (name, email, specialty) VALUES ('{name}', '{name}@x.io', 'replication')",
    )


@slow
@STANDBYS
async def test_a_write_shows_as_lag_until_the_standby_replays_it(pair: StreamingPair) -> None:
    async with _watching(pair) as standby:
        await _write(pair)  # held back on the standby for its apply delay
        await until(lambda: (standby.lag_seconds or 0.0) > 0, lambda: f"a lag after the write: {standby}")
        lag = standby.lag_seconds or 0.0  # read with no await since: the monitor has not changed it
        assert standby.up
        assert standby.usable(lag, now=standby.measured_at)
        assert not standby.usable(lag / 2, now=standby.measured_at)
        await until(lambda: standby.lag_seconds == 0.0, lambda: f"the standby to catch up: {standby}")
        assert standby.replay_lsn > 0
        assert standby.usable(1.0, now=standby.measured_at)


@slow
@STANDBYS
async def test_an_idle_primary_keeps_a_caught_up_standby_at_zero(pair: StreamingPair) -> None:
    async with _watching(pair) as standby:
        for _ in range(5):  # a try in which the primary wrote WAL of its own (a checkpoint) proves nothing
            before = await current_lsn(pair.primary_url)
            seen: set[float | None] = set()
            deadline = time.monotonic() + IDLE_SECONDS
            while time.monotonic() < deadline:
                seen.add(standby.lag_seconds)
                await asyncio.sleep(0.05)
            if await current_lsn(pair.primary_url) == before:
                break
        else:
            pytest.fail("the primary wrote WAL in each of 5 idle periods")
    assert seen == {0.0}


@slow
@STANDBYS
async def test_a_stopped_standby_is_down_with_no_lag_and_recovers_once_started(pair: StreamingPair) -> None:
    async with _watching(pair) as standby:
        try:
            await asyncio.to_thread(pair.stop_standby)
            await until(lambda: not standby.up, lambda: f"the standby seen down: {standby}")
            assert standby.lag_seconds is None
            assert not standby.usable(3600.0)
            await _write(pair)  # kept for the standby in its slot
        finally:
            await asyncio.to_thread(pair.start_standby)
        await until(lambda: standby.up, lambda: f"the standby seen up again: {standby}")
        primary_lsn = int(await fetchval(pair.primary_url, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"))
        await until(
            lambda: standby.lag_seconds == 0.0 and standby.replay_lsn >= primary_lsn,
            lambda: f"the standby to catch up after its restart: {standby}",
        )


@slow
@STANDBYS
async def test_metrics_report_the_standby_and_ready_stays_about_the_primary(pair: StreamingPair) -> None:
    app = create_app(_settings(pair))
    label = f'{{replica="127.0.0.1:{pair.standby.port}/devdir"}}'
    lag, up = f"devdir_db_replica_lag_seconds{label}", f"devdir_db_replica_up{label}"
    async with serve(app) as client:
        await until(lambda: _scraped(client, f"{lag} 0.0"), "a lag of 0 on /metrics")
        assert f"{up} 1.0" in (await client.get("/metrics")).text.splitlines()
        try:
            await asyncio.to_thread(pair.stop_standby)
            await until(lambda: _scraped(client, f"{up} 0.0"), "the standby down on /metrics")
            assert lag not in (await client.get("/metrics")).text  # unknown while down: no sample
            ready = await client.get("/ready")
            assert ready.status_code == 200, ready.text
        finally:
            await asyncio.to_thread(pair.start_standby)
    assert "postgres@" not in str(app.state.replicas.standbys)  # neither user nor password in names or reprs


async def _scraped(client: httpx.AsyncClient, line: str) -> bool:
    text = (await client.get("/metrics")).text
    return line in text.splitlines()


async def test_without_replica_urls_there_is_no_monitor_and_no_replica_metric(app: Litestar) -> None:
    assert app.state.replicas is None
    async with serve(app) as client:
        assert "devdir_db_replica" not in (await client.get("/metrics")).text


def test_lag_is_the_time_since_the_primary_was_last_seen_where_the_standby_has_replayed() -> None:
    history = WalHistory(keep=60.0)
    assert history.lag(100, now=0.0) is None  # no sample of the primary yet
    for at, lsn in [(0.0, 100), (1.0, 100), (2.0, 150), (3.0, 150), (4.0, 200)]:
        history.add(at, lsn)
    assert history.lsns == [100, 150, 200]  # one sample per new position: an idle primary adds none
    assert history.lag(200, now=10.0) == 0.0  # caught up, however long the primary has been idle
    assert history.lag(260, now=10.0) == 0.0
    assert history.lag(150, now=10.0) == 7.0  # the primary was last seen at 150 at 3.0: at most 7 s stale
    assert history.lag(120, now=10.0) == 9.0  # has 100 (last seen at 1.0), not 150
    assert history.lag(50, now=10.0) is None  # behind the whole history, which is younger than `keep`: unknown


def test_a_standby_behind_the_whole_pruned_history_is_more_than_keep_behind() -> None:
    history = WalHistory(keep=60.0)
    for at, lsn in [(0.0, 100), (10.0, 150), (100.0, 200)]:
        history.add(at, lsn)
    assert history.lsns == [150, 200]
    lag = history.lag(120, now=100.0)
    assert lag is not None
    assert lag > 60.0


def test_a_measured_lag_grows_with_the_time_since_it_was_measured() -> None:
    standby = Standby("h:5432/d", "postgresql://h/d", replay_lsn=1, lag_seconds=0.2, up=True, measured_at=10.0)
    assert standby.usable(1.0, now=10.5)
    assert not standby.usable(1.0, now=11.0)
    assert not Standby("h:5432/d", "postgresql://h/d", lag_seconds=0.0, up=False).usable(1.0)
