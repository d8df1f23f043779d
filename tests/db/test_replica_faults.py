"""A hot standby that is killed, restarted, or cancels queries on recovery conflicts, under a read load through the
app (tests/db/replica_faults.py): no answer is ever >= 500 and no export is ever cut, the reads that could not run
there ran on the primary and were counted why, and a standby that is back serves reads again.

The conflicts are real: the standby cancels whatever is in the way of replay at once (`max_standby_streaming_delay
= 0`, no `hot_standby_feedback`) while the primary updates rows and vacuums them; each test that relies on them
fails unless the standby's own pg_stat_database_conflicts and the router's `conflict` count say they happened.
Deadlines are generous and nothing is asserted about how fast anything is.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from litestar import Litestar
from sqlalchemy.engine import make_url

from service.app import create_app
from tests.database import connect, run_sql
from tests.db.replica_faults import (
    EXACT,
    READER,
    ROWS,
    STANDBY_SETTINGS,
    Answers,
    Churn,
    Exports,
    cancelled_statements,
    churn,
    conflicts,
    counted,
    exporting,
    load,
    locking,
    readers,
    settings,
)
from tests.polling import until
from tests.postgresql_only import STANDBYS
from tests.read_metrics import since
from tests.server import served
from tests.standby import StreamingPair, current_lsn, streaming_pair, wait_for_replay

pytestmark = STANDBYS

slow = pytest.mark.slow  # starts two PostgreSQL servers of its own

CLIENTS = 6  # concurrent readers: within the pools (DB_POOL_SIZE 20 on each host), as a fault must be the only cause
ENOUGH = 50  # reads counted of a kind before a phase is over
EXPORTS = 6  # exports of all ROWS under conflicts, at least
CONFLICTS = 5  # reads cancelled on the standby and run again on the primary, at least
DEADLINE = 300.0  # seconds for a phase on a loaded machine; never a measure of speed


@dataclass(frozen=True)
class Loaded:
    pair: StreamingPair
    ids: tuple[int, int]  # the first and last developer id


@dataclass
class App:
    app: Litestar
    client: httpx.AsyncClient

    @property
    def standby_usable(self) -> bool:
        standby = self.app.state.replicas.standbys[0]
        return bool(standby.usable(self.app.state.replicas.max_lag))


@pytest.fixture(scope="module")
def loaded() -> Iterator[Loaded]:
    with streaming_pair(**STANDBY_SETTINGS) as pair:
        yield Loaded(pair, asyncio.run(load(pair, ROWS)))


@pytest.fixture
async def app(loaded: Loaded) -> AsyncIterator[App]:
    built = create_app(settings(loaded.pair))
    async with served(built) as url, httpx.AsyncClient(base_url=url, timeout=120) as client:
        served_app = App(built, client)
        await until(lambda: served_app.standby_usable, "the standby measured usable")
        yield served_app


async def _counted_since(client: httpx.AsyncClient, before: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    return since(before, await counted(client))


async def _until_counted(
    client: httpx.AsyncClient, before: Counter[tuple[str, str]], key: tuple[str, str], what: str
) -> None:
    async def enough() -> bool:
        return (await _counted_since(client, before))[key] >= ENOUGH

    async def state() -> str:
        return f"{ENOUGH} reads counted {key} ({what}); counted since: {await _counted_since(client, before)}"

    try:
        await until(enough, what, DEADLINE, every=0.2)
    except AssertionError as error:
        raise AssertionError(f"{error}: {await state()}") from None


@slow
async def test_a_standby_killed_and_started_again_costs_no_read(loaded: Loaded, app: App) -> None:
    """Readers of developers and pages while the standby is killed (`pg_ctl stop -m immediate`) and started again:
    every answer a 200; while it is down the reads run on the primary, counted host_down; once it is back and
    measured, on the standby again. (A new connection at the very moment of the kill can be answered "the database
    system is shutting down": see the last test.)"""
    pair, client = loaded.pair, app.client
    answers, stop = Answers(), asyncio.Event()
    load_running = asyncio.create_task(readers(client, answers, loaded.ids, stop, CLIENTS))
    try:
        await _until_counted(client, await counted(client), ("replica", "fit"), "the standby serving before the kill")
        # A kill: no shutdown, open connections cut as they are, in the middle of reads.
        await asyncio.to_thread(pair.standby.pg_ctl, "-m", "immediate", "stop")
        assert not pair.standby.running
        down = await counted(client)
        await _until_counted(client, down, ("primary", "host_down"), "reads while the standby is down")
        served_down = (await _counted_since(client, down))[("replica", "fit")]
        await asyncio.to_thread(pair.start_standby)
        await until(lambda: app.standby_usable, "the standby measured usable again", DEADLINE)
        back = await counted(client)
        await _until_counted(client, back, ("replica", "fit"), "the standby serving again")
    finally:
        stop.set()
        await load_running
    assert served_down == 0  # nothing ran on the standby while it was down
    assert answers.failed == 0, answers
    assert answers.statuses[200] >= 3 * ENOUGH, answers


@slow
async def test_recovery_conflicts_under_a_read_load_cost_no_read(loaded: Loaded, app: App) -> None:
    """Readers of developers and pages, and an exporter, on the standby while the primary updates and vacuums the
    table and takes its ACCESS EXCLUSIVE lock again and again: the standby cancels queries (exports mostly, short
    reads too, as its log says), each runs again on the primary, counted conflict, and no answer is >= 500."""
    pair, client = loaded.pair, app.client
    answers, exports, done, stop = Answers(), Exports(), Churn(), asyncio.Event()
    before, cancelled_before = await counted(client), await conflicts(pair)
    log_at = len(pair.standby.log)

    def short_reads_cancelled() -> int:
        """Developers by id and list pages the standby's log says it cancelled (exports aside)."""
        kinds = cancelled_statements(pair.standby.log[log_at:])
        return sum(n for kind, n in kinds.items() if kind.startswith(("one ", "page ")))

    async def conflicted() -> bool:
        reads = await _counted_since(client, before)
        return reads[("primary", "conflict")] >= CONFLICTS and short_reads_cancelled() > 0

    running = [
        asyncio.create_task(readers(client, answers, loaded.ids, stop, CLIENTS)),
        asyncio.create_task(exporting(client, ROWS, exports, stop)),
        asyncio.create_task(churn(pair, loaded.ids, stop, done)),
        asyncio.create_task(locking(pair, stop, done, every=0.02)),
    ]
    try:
        await until(
            conflicted,
            lambda: (
                f"{CONFLICTS} reads counted conflict, a short one among them: {answers}, {exports}, {done}, "
                f"cancelled: {cancelled_statements(pair.standby.log[log_at:])}"
            ),
            DEADLINE,
            0.5,
        )
    finally:
        stop.set()
        await asyncio.gather(*running)
    reads = await _counted_since(client, before)
    assert answers.failed == 0, (answers, reads)
    assert set(exports.outcomes) <= {EXACT}, exports
    # The standby really cancelled queries, short reads among them, and each one cancelled ran again on the primary.
    # (A backend reports its cancellations to the statistics when it next flushes them: within seconds, not at once.)
    await until(
        lambda: _grown(pair, cancelled_before, CONFLICTS), f"{CONFLICTS} cancellations in the standby's statistics"
    )
    assert short_reads_cancelled() > 0
    assert reads[("replica", "fit")] > 0, reads  # the standby served between the conflicts


@slow
async def test_exports_from_a_conflicting_standby_are_whole_or_not_started(loaded: Loaded, app: App) -> None:
    """Exports of all ROWS from the standby while the primary updates and vacuums: each is a 200 with exactly ROWS
    lines, whether it ran on the standby or was cancelled there (its spool discarded before the first byte) and ran
    on the primary; never a cut body."""
    pair, client = loaded.pair, app.client
    exports, done, stop = Exports(), Churn(), asyncio.Event()
    before, cancelled_before = await counted(client), await conflicts(pair)
    log_at = len(pair.standby.log)

    async def enough() -> bool:
        return (
            exports.outcomes.total() >= EXPORTS and (await _counted_since(client, before))[("primary", "conflict")] > 0
        )

    # Two exports at a time (EXPORT_MAX_CONCURRENT is 4) while the primary updates and vacuums: no lock taken.
    running = [asyncio.create_task(exporting(client, ROWS, exports, stop)) for _ in range(2)]
    running.append(asyncio.create_task(churn(pair, loaded.ids, stop, done)))
    try:
        await until(
            enough, lambda: f"{EXPORTS} exports, one fallen back on a conflict: {exports}, {done}", DEADLINE, 0.5
        )
    finally:
        stop.set()
        await asyncio.gather(*running)
    reads = await _counted_since(client, before)
    assert exports.outcomes == Counter({EXACT: exports.outcomes.total()}), exports
    assert reads[("primary", "conflict")] > 0, reads
    await until(lambda: _grown(pair, cancelled_before, 1), "a cancellation in the standby's statistics")
    assert any(kind.startswith("export ") for kind in cancelled_statements(pair.standby.log[log_at:]))
    # Each export counted once, where it ran: on the standby, or on the primary after a conflict there.
    assert reads.total() == exports.outcomes.total(), (reads, exports)


async def _grown(pair: StreamingPair, before: dict[str, int], by: int) -> bool:
    """Whether the standby's statistics count at least `by` more cancelled queries than `before`."""
    return sum((await conflicts(pair)).values()) - sum(before.values()) >= by


@slow
async def test_a_standby_refusing_new_connections_with_an_error_costs_no_read(loaded: Loaded, app: App) -> None:
    """A standby that answers a new connection with an error (as one shutting down or starting up does, 57P03)
    rather than refusing it at TCP: the read runs on the primary, counted host_down. Here the database
    refuses every new connection on both servers (ALLOW_CONNECTIONS false, replayed by the standby), but the
    monitor's connection to the standby and a pooled one to the primary were open before."""
    pair, client = loaded.pair, app.client
    assert (await client.get("/ready")).status_code == 200  # the primary's pool holds a connection now
    before = await counted(client)
    primary, standby = (
        make_url(url).set(database="postgres").render_as_string(hide_password=False)
        for url in (pair.primary_url, pair.standby_url)
    )
    await run_sql(primary, "ALTER DATABASE devdir ALLOW_CONNECTIONS false")
    try:
        await wait_for_replay(standby, await current_lsn(primary))
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError):  # "not currently accepting connections"
            await connect(pair.standby_url)
        answer = await client.get(f"/api/developers/{loaded.ids[0]}", headers=READER)
    finally:
        await run_sql(primary, "ALTER DATABASE devdir ALLOW_CONNECTIONS true")
    assert answer.status_code == 200, answer.text
    assert since(before, await counted(client)) == Counter({("primary", "host_down"): 1})
