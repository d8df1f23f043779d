"""Reads on a real hot standby (tests/standby.py) that never show a client data older than its own writes: the
standby replays everything 500 ms late (`recovery_min_apply_delay`), so a read sent there right after a write would
miss it; the Consistency-Token (and, without it, the pod's memory of the account's last write) sends it where the
write is. Without any write to see, reads go to the standby (counted on /metrics). So for GET by id and the list,
through a real PgBouncer in transaction mode too (the guard as an unnamed statement), for the export, and for the
change feed's replays; and a write that wrote nothing carries no token.

Where a test needs the standby to lack a write for certain, it pauses replay there (`pg_wal_replay_pause()`) rather
than relying on the delay: what it asserts then never depends on how fast the machine is."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar

from service.app import create_app
from service.core.settings import Settings
from service.db.consistency import HEADER, Behind, Need, Tokens, fetch_needing
from service.db.pooler import UnnamedStatements
from tests.client import TEST_SECRET, assert_problem, serve, token
from tests.database import fetchval, run_sql
from tests.developers.api import create_as_event
from tests.developers.feed_client import SSEStream, cursor, running, sse
from tests.pgbouncer import running as pgbouncer
from tests.polling import WAIT, until
from tests.postgresql_only import STANDBYS
from tests.read_metrics import Reads, counted, reads_counted, since
from tests.standby import StreamingPair, current_lsn, streaming_pair, wait_for_replay

pytestmark = STANDBYS

slow = pytest.mark.slow  # starts two PostgreSQL servers of its own

DELAY = "500ms"
LOOPS = 50  # write-then-read loops per kind and mode here; the stale-read benchmark runs 2,000
POOLED_LOOPS = 20  # the same through PgBouncer
EXPORT_LOOPS = 10  # exports right after a create, per mode
FEED_EVENTS = 12  # events the resumed feed replays (less the first)


@pytest.fixture(scope="module")
def pair() -> Iterator[StreamingPair]:
    with streaming_pair(recovery_min_apply_delay=DELAY) as started:
        yield started


def _settings(pair: StreamingPair, **overrides: object) -> Settings:
    # The pair's own servers, never the run's pooler.
    return Settings(
        database_url=pair.primary_url,
        database_replica_urls=pair.standby_url,
        secret_key=TEST_SECRET,
        db_replica_max_lag_ms=2000,  # the 500 ms delay is within it: the standby serves what needs no write
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
async def client(pair: StreamingPair) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(pair))
    async with serve(app, bearer=None) as served:
        served.headers["Authorization"] = f"Bearer {token('editor', account_id=7)}"
        standby = app.state.replicas.standbys[0]
        await until(lambda: standby.usable(2.0), f"the standby measured usable: {standby}")
        served.app = app  # type: ignore[attr-defined]
        yield served


def _new() -> dict[str, str]:
    name = f"rr-{secrets.token_hex(5)}"
    return {"name": name, "email": f"{name}@example.com", "specialty": "routing"}


@slow
@pytest.mark.parametrize("echo", [True, False], ids=["token-echoed", "token-forgotten"])
async def test_every_read_after_a_write_shows_the_write(client: httpx.AsyncClient, echo: bool) -> None:
    stale = 0
    for _ in range(LOOPS):
        created = await client.post("/api/developers", json=_new())
        assert created.status_code == 201, created.text
        sent = {HEADER: created.headers[HEADER]} if echo else {}
        developer = created.json()
        got = await client.get(f"/api/developers/{developer['id']}", headers=sent)
        stale += got.status_code != 200
        changed = await client.patch(
            f"/api/developers/{developer['id']}", json={"specialty": f"s-{secrets.token_hex(3)}"}, headers=sent
        )
        assert changed.status_code == 200, changed.text
        sent = {HEADER: changed.headers[HEADER]} if echo else {}
        got = await client.get(f"/api/developers/{developer['id']}", headers=sent)
        stale += got.json()["specialty"] != changed.json()["specialty"]
        page = await client.get("/api/developers", params={"specialty": changed.json()["specialty"]}, headers=sent)
        stale += [item["id"] for item in page.json()["items"]] != [developer["id"]]
        deleted = await client.delete(f"/api/developers/{developer['id']}")
        assert deleted.status_code == 204, deleted.text
        sent = {HEADER: deleted.headers[HEADER]} if echo else {}
        gone = await client.get(f"/api/developers/{developer['id']}", headers=sent)
        stale += gone.status_code != 404
    assert stale == 0
    reads = await counted(client)
    assert reads[("primary", "token_ahead")] > 0  # the standby was really behind: reads had to go elsewhere


@slow
async def test_reads_with_nothing_to_wait_for_go_to_the_standby(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/developers", json=_new())
    developer_id = created.json()["id"]
    await asyncio.sleep(1.0)  # past the apply delay: the standby has it
    # Another account reads: this pod remembers account 7's write, not account 8's.
    before = await counted(client)
    other = {"Authorization": f"Bearer {token('viewer', account_id=8)}"}
    for _ in range(100):
        got = await client.get(f"/api/developers/{developer_id}", headers=other)
        assert got.status_code == 200, got.text
    after = await counted(client)
    replica = after[("replica", "fit")] - before.get(("replica", "fit"), 0.0)
    assert replica >= 90, (before, after)


@slow
async def test_a_token_the_service_did_not_issue_is_refused(client: httpx.AsyncClient) -> None:
    forged = Tokens("another-key-of-at-least-forty-characters!!").issue(2**40)
    for sent in (forged, "not-a-token", forged[:-1] + ("A" if forged[-1] != "A" else "B")):
        answer = await client.get("/api/developers", headers={HEADER: sent})
        problem = assert_problem(answer, 400)
        assert problem["extra"][0]["key"] == HEADER, problem


@slow
async def test_without_replicas_writes_carry_no_token(pair: StreamingPair) -> None:
    app: Litestar = create_app(Settings(database_url=pair.primary_url, secret_key=TEST_SECRET))
    async with serve(app) as client:
        created = await client.post("/api/developers", json=_new())
        assert created.status_code == 201
        assert HEADER not in created.headers


# Helpers of the tests below


async def _replica_caught_up(app: Litestar, pair: StreamingPair) -> None:
    """The standby has replayed every commit so far, and the app's monitor has measured it fit and sampled a
    snapshot that includes them all."""
    await wait_for_replay(pair.standby_url, await current_lsn(pair.primary_url))
    # Every transaction id below the primary's snapshot's xmax has been assigned, so it has ended by now.
    assigned = int(await fetchval(pair.primary_url, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text")) - 1
    standby = app.state.replicas.standbys[0]
    await until(
        lambda: standby.usable(2.0) and standby.has_seen(Need(through=assigned)),
        lambda: f"the monitor to see the standby caught up: {standby}",
    )


@contextlib.asynccontextmanager
async def _replay_paused(pair: StreamingPair) -> AsyncIterator[None]:
    """The standby applies no more WAL until the block ends (then it resumes, also when the block fails)."""
    await run_sql(pair.standby_url, "SELECT pg_wal_replay_pause()")
    try:
        await until(
            lambda: _fetchval_is(pair.standby_url, "SELECT pg_get_wal_replay_pause_state()", "paused"),
            "the standby's replay to pause",
        )
        yield
    finally:
        await run_sql(pair.standby_url, "SELECT pg_wal_replay_resume()")


async def _fetchval_is(url: str, query: str, expected: object) -> bool:
    return bool(await fetchval(url, query) == expected)


# Through a real PgBouncer in transaction mode (unnamed statements, the guard among them)


@pytest.fixture
async def pooled(pair: StreamingPair) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose primary and standby are each behind a PgBouncer of their own, in transaction mode."""
    with pgbouncer(pair.primary_url) as primary_pooler, pgbouncer(pair.standby_url) as standby_pooler:
        settings = Settings(
            database_url=primary_pooler.url(pair.primary_url),
            database_direct_url=pair.primary_url,
            database_replica_urls=standby_pooler.url(pair.standby_url),
            db_pooler="transaction",
            secret_key=TEST_SECRET,
            db_replica_max_lag_ms=2000,
        )
        app = create_app(settings)
        async with serve(app, bearer=None) as served:
            served.headers["Authorization"] = f"Bearer {token('editor', account_id=17)}"
            standby = app.state.replicas.standbys[0]
            await until(lambda: standby.usable(2.0), f"the standby measured usable: {standby}")
            served.app = app  # type: ignore[attr-defined]
            yield served


@slow
async def test_through_pgbouncer_reads_after_a_write_show_it_and_others_go_to_the_standby(
    pooled: httpx.AsyncClient, pair: StreamingPair
) -> None:
    app: Litestar = pooled.app  # type: ignore[attr-defined]
    replica = app.state["reads"].replicas[0]
    before = await counted(pooled)
    stale = 0
    for _ in range(POOLED_LOOPS):
        created = await pooled.post("/api/developers", json=_new())
        assert created.status_code == 201, created.text
        developer = created.json()
        got = await pooled.get(f"/api/developers/{developer['id']}", headers={HEADER: created.headers[HEADER]})
        stale += got.status_code != 200 or got.json() != developer
        changed = await pooled.patch(f"/api/developers/{developer['id']}", json={"specialty": _new()["name"]})
        assert changed.status_code == 200, changed.text
        sent = {HEADER: changed.headers[HEADER]}
        page = await pooled.get("/api/developers", params={"specialty": changed.json()["specialty"]}, headers=sent)
        stale += [item["id"] for item in page.json()["items"]] != [developer["id"]]
    assert stale == 0
    assert since(before, await counted(pooled)).get(("primary", "token_ahead"), 0) > 0

    # The guard itself, as an unnamed statement on the standby through its pooler: false while the standby lacks
    # the write (replay paused), true once it has it.
    query = "SELECT id FROM developers WHERE id = $1"
    async with _replay_paused(pair):
        created = await pooled.post("/api/developers", json=_new())
        assert created.status_code == 201, created.text
        developer_id = created.json()["id"]
        need = Need((app.state["consistency"].tokens.read(created.headers[HEADER]),))
        pooled_connection = await replica.engine.raw_connection()
        try:
            driver = pooled_connection.driver_connection
            assert isinstance(driver, UnnamedStatements), type(driver)  # no named statement behind the pooler
            with pytest.raises(Behind):
                await fetch_needing(driver, need, query, [developer_id])
        finally:
            pooled_connection.close()
    await _replica_caught_up(app, pair)
    pooled_connection = await replica.engine.raw_connection()
    try:
        assert await fetch_needing(pooled_connection.driver_connection, need, query, [developer_id]) == [
            (developer_id,)
        ]
    finally:
        pooled_connection.close()

    # With the standby caught up, a read with the token runs there (the guard passes), and so do reads of an
    # account this pod remembers no write of.
    before = await counted(pooled)
    got = await pooled.get(f"/api/developers/{developer_id}", headers={HEADER: created.headers[HEADER]})
    assert got.status_code == 200, got.text
    other = {"Authorization": f"Bearer {token('viewer', account_id=18)}"}
    for _ in range(50):
        assert (await pooled.get(f"/api/developers/{developer_id}", headers=other)).status_code == 200
        assert (await pooled.get("/api/developers", params={"limit": "5"}, headers=other)).status_code == 200
    change = since(before, await counted(pooled))
    assert change.get(("replica", "fit"), 0) >= 91, change  # the read with the token and at least 90 of the 100


# The export


@slow
@pytest.mark.parametrize("echo", [True, False], ids=["token-echoed", "token-forgotten"])
async def test_an_export_right_after_a_create_includes_it(client: httpx.AsyncClient, echo: bool) -> None:
    before = await counted(client)
    for _ in range(EXPORT_LOOPS):
        created = await client.post("/api/developers", json=_new())
        assert created.status_code == 201, created.text
        sent = {HEADER: created.headers[HEADER]} if echo else {}
        exported = await client.get("/api/developers/export", params={"format": "ndjson"}, headers=sent)
        assert exported.status_code == 200, exported.text
        emails = {json.loads(line)["email"] for line in exported.text.splitlines()}
        assert created.json()["email"] in emails
    # The standby lagged behind each create: the exports ran where the write was.
    assert since(before, await counted(client)).get(("primary", "token_ahead"), 0) > 0


@slow
async def test_exports_with_nothing_to_wait_for_run_on_the_standby(
    client: httpx.AsyncClient, pair: StreamingPair
) -> None:
    app: Litestar = client.app  # type: ignore[attr-defined]
    created = await client.post("/api/developers", json=_new())
    assert created.status_code == 201, created.text
    await _replica_caught_up(app, pair)
    other = {"Authorization": f"Bearer {token('viewer', account_id=9)}"}
    before = await counted(client)
    for _ in range(20):
        exported = await client.get("/api/developers/export", params={"format": "ndjson"}, headers=other)
        assert exported.status_code == 200, exported.text
        assert created.json()["email"] in {json.loads(line)["email"] for line in exported.text.splitlines()}
    change = since(before, await counted(client))
    assert change.get(("replica", "fit"), 0) >= 18, change


# The change feed's catch-up


@slow
async def test_a_resumed_feed_replays_every_later_event_once_in_order_wherever_it_runs(pair: StreamingPair) -> None:
    async with running(_settings(pair)) as run:
        standby = run.app.state.replicas.standbys[0]
        await until(lambda: standby.usable(2.0), f"the standby measured usable: {standby}")
        async with sse(run) as live:
            for i in range(FEED_EVENTS):
                await create_as_event(run.api, **_new() | {"name": f"feed-{i:03d}-{secrets.token_hex(3)}"})
            seen = await live.events(FEED_EVENTS)
        ids = [event["id"] for event in seen]
        assert ids == sorted(ids, key=cursor)
        assert len(set(ids)) == FEED_EVENTS

        async def resumed(label: str) -> Reads:
            """Resume after the first event: every later one, once, in order, and nothing more; the change of the
            read counts meanwhile."""
            before = reads_counted((await run.api.get("/metrics")).text)
            async with sse(run, {"after": seen[0]["id"]}) as stream:
                replayed = await _events(stream, len(seen) - 1)
                await stream.quiet(0.5)
            assert [event["id"] for event in replayed] == [event["id"] for event in seen[1:]], label
            assert replayed == seen[1:], label
            async with sse(run, headers={"Last-Event-ID": seen[0]["id"]}) as stream:  # as a browser resumes
                assert await _events(stream, len(seen) - 1) == seen[1:], label
                await stream.quiet(0.5)
            return since(before, reads_counted((await run.api.get("/metrics")).text))

        # The standby lacks the newest event (replay paused before it was written): the replays, which must
        # include it, run on the primary.
        async with _replay_paused(pair):
            async with sse(run) as live:
                await create_as_event(run.api, **_new())
                seen.append(await live.event())
            behind = await resumed("standby behind")
        assert behind.get(("replica", "fit"), 0) == 0, behind
        assert sum(value for (target, _), value in behind.items() if target == "primary") >= 2, behind

        # Caught up: the replays run on the standby.
        await _replica_caught_up(run.app, pair)
        caught_up = await resumed("standby caught up")
        assert caught_up.get(("replica", "fit"), 0) >= 1, caught_up


async def _events(stream: SSEStream, count: int) -> list[dict[str, Any]]:
    """`count` change events, within one deadline for them all (SSEStream's own deadline is per message, and each
    keepalive starts it again: a replay that never comes would be waited for forever)."""
    try:
        async with asyncio.timeout(WAIT):
            return await stream.events(count)
    except TimeoutError:
        raise AssertionError(f"{count} events did not all arrive within {WAIT} s") from None


# A write that wrote nothing


@slow
async def test_a_write_whose_transaction_wrote_nothing_carries_no_token(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/developers", json=_new())
    assert created.status_code == 201, created.text
    developer_id = created.json()["id"]
    # Deleting ids no developer has: a DELETE that matched no row, so no transaction id was ever assigned.
    nothing = await client.post("/api/developers/bulk-delete", json={"ids": [developer_id + 1_000_000]})
    assert nothing.status_code == 200, nothing.text
    assert nothing.json() == {"deleted": 0, "not_found": [developer_id + 1_000_000]}
    assert HEADER not in nothing.headers
    empty = await client.patch("/api/developers", json=[])  # an empty batch update: no statement at all
    assert empty.status_code == 200, empty.text
    assert empty.json()["updated"] == 0
    assert HEADER not in empty.headers
    # The same route when it does delete a row carries one.
    deleted = await client.post("/api/developers/bulk-delete", json={"ids": [developer_id]})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"deleted": 1, "not_found": []}
    assert HEADER in deleted.headers


@slow
async def test_the_check_in_the_reads_own_statement_refuses_a_standby_without_the_write(
    client: httpx.AsyncClient, pair: StreamingPair
) -> None:
    """The router's choice from memory switched off (the standby taken to have every write): the reads go to the
    standby, whose own statement finds the write missing; they run again on the primary, counted as retried."""
    app: Litestar = client.app  # type: ignore[attr-defined]
    standby = app.state.replicas.standbys[0]
    label = f'devdir_db_replica_retries_total{{reason="behind",replica="{standby.name}"}}'

    async def behind() -> float:
        lines = (await client.get("/metrics")).text.splitlines()
        return float(next(line for line in lines if line.startswith(label)).split()[-1])

    async with _replay_paused(pair):
        specialty = f"own-{secrets.token_hex(4)}"
        created = await client.post("/api/developers", json=_new() | {"specialty": specialty})
        assert created.status_code == 201, created.text
        sent = {HEADER: created.headers[HEADER]}
        path = f"/api/developers/{created.json()['id']}"
        before = await behind()
        standby.has_seen = lambda _need: True
        try:
            got = await client.get(path, headers=sent)
            page = await client.get("/api/developers", params={"specialty": specialty}, headers=sent)
            exported = await client.get("/api/developers/export", params={"format": "ndjson"}, headers=sent)
        finally:
            vars(standby).pop("has_seen", None)
        assert got.json() == created.json()
        assert [item["id"] for item in page.json()["items"]] == [created.json()["id"]]
        assert created.json()["email"] in exported.text
        assert await behind() - before == 3
