"""The primary-and-standby harness (tests/standby.py) does what later tests of reading from standbys will rely on:
the standby is a real hot standby (in recovery, refusing writes), a commit on the primary shows on it once it has
replayed the primary's WAL position taken after the commit, `recovery_min_apply_delay` makes that lag real, and
the standby can be stopped and started again and catch up."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import asyncpg
import pytest

from tests.database import connect, fetchval, run_sql
from tests.postgresql_only import STANDBYS
from tests.standby import StreamingPair, current_lsn, streaming_pair, wait_for_replay

pytestmark = [pytest.mark.slow, STANDBYS]  # starts two PostgreSQL servers of its own and copies one into the other

APPLY_DELAY = 2.0  # seconds; long enough that a read right after a commit comes before it, even on a busy machine


@pytest.fixture(scope="module")
def pair() -> Iterator[StreamingPair]:
    with streaming_pair() as started:
        yield started


@pytest.fixture  # one test's only: not left running beside `pair` to the end of the module
def delayed_pair() -> Iterator[StreamingPair]:
    with streaming_pair(recovery_min_apply_delay=f"{int(APPLY_DELAY * 1000)}ms") as started:
        yield started


def _insert(name: str) -> str:
    return f"INSERT INTO developers (name, email, specialty) VALUES ('{name}', '{name}@x.io', 'replication')"


async def _visible(url: str, name: str) -> bool:
    return bool(await fetchval(url, f"SELECT count(*) FROM developers WHERE name = '{name}'"))


async def test_a_commit_shows_on_the_standby_once_replayed_and_the_standby_refuses_writes(
    pair: StreamingPair,
) -> None:
    name = f"primary-{secrets.token_hex(4)}"
    await run_sql(pair.primary_url, _insert(name))
    await wait_for_replay(pair.standby_url, await current_lsn(pair.primary_url))

    assert await _visible(pair.standby_url, name)
    assert await fetchval(pair.standby_url, "SELECT pg_is_in_recovery()") is True
    assert await fetchval(pair.primary_url, "SELECT pg_is_in_recovery()") is False
    with pytest.raises(asyncpg.PostgresError) as refused:
        await run_sql(pair.standby_url, _insert(f"standby-{secrets.token_hex(4)}"))
    assert refused.value.sqlstate == "25006"  # read_only_sql_transaction


async def test_an_apply_delay_keeps_a_commit_off_the_standby_until_it_is_replayed(delayed_pair: StreamingPair) -> None:
    # The standby applies a commit once its clock has passed the commit's time on the primary plus the delay: a read
    # that ends less than the delay after the moment before the commit must not see it. A read that ended later
    # (the machine was too busy) proves nothing either way, and the check is made again with another row.
    standby = await connect(delayed_pair.standby_url)
    try:
        for _ in range(5):
            name = f"delayed-{secrets.token_hex(4)}"
            before_commit = time.monotonic()
            await run_sql(delayed_pair.primary_url, _insert(name))
            seen = await standby.fetchval("SELECT count(*) FROM developers WHERE name = $1", name)
            if time.monotonic() - before_commit < APPLY_DELAY:
                break
        else:
            pytest.fail(f"no read on the standby came within {APPLY_DELAY} s of a commit, in 5 tries")
    finally:
        await standby.close()
    assert seen == 0

    await wait_for_replay(delayed_pair.standby_url, await current_lsn(delayed_pair.primary_url))
    assert await _visible(delayed_pair.standby_url, name)


async def test_a_stopped_standby_starts_again_and_catches_up(pair: StreamingPair) -> None:
    pair.stop_standby()
    assert not pair.standby.running
    name = f"while-stopped-{secrets.token_hex(4)}"
    await run_sql(pair.primary_url, _insert(name))  # the primary keeps this WAL for the standby's slot
    lsn = await current_lsn(pair.primary_url)

    pair.start_standby()
    await wait_for_replay(pair.standby_url, lsn)
    assert await _visible(pair.standby_url, name)
    assert await fetchval(pair.standby_url, "SELECT pg_is_in_recovery()") is True
