"""The account and import-job reads on a real hot standby (tests/standby.py) that replays 500 ms late: an account
just created, and an import just submitted, are read back at once, with the write's Consistency-Token and without
it (the pod remembers the account's last write); reads with nothing to wait for run on the standby. Counted by
`devdir_db_reads_total`, as the routed reads of the developers are (tests/db/test_read_routing.py). And the bound
for everyone else: a standby further behind than DB_REPLICA_MAX_LAG_MS gets no reads until it has caught up."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from service.app import create_app
from service.core.settings import Settings
from service.db.consistency import HEADER
from tests.client import TEST_SECRET, serve, token
from tests.database import run_sql
from tests.polling import until
from tests.postgresql_only import STANDBYS
from tests.read_metrics import counted
from tests.standby import StreamingPair, streaming_pair

pytestmark = STANDBYS

slow = pytest.mark.slow  # starts two PostgreSQL servers of its own

LOOPS = 10


@pytest.fixture(scope="module")
def pair() -> Iterator[StreamingPair]:
    with streaming_pair(recovery_min_apply_delay="500ms") as started:
        yield started


@pytest.fixture
async def client(pair: StreamingPair) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=pair.primary_url,
        database_replica_urls=pair.standby_url,
        secret_key=TEST_SECRET,
        db_replica_max_lag_ms=2000,
        worker_in_process=False,  # submitted jobs stay queued: only their reads matter here
    )
    app = create_app(settings)
    async with serve(app, bearer=None) as served:
        served.headers["Authorization"] = f"Bearer {token('admin', account_id=1)}"
        standby = app.state.replicas.standbys[0]
        await until(lambda: standby.usable(2.0), f"the standby measured usable: {standby}")
        yield served


@slow
@pytest.mark.parametrize("echo", [True, False], ids=["token-echoed", "token-forgotten"])
async def test_an_account_just_created_is_listed_at_once(client: httpx.AsyncClient, echo: bool) -> None:
    before = await counted(client)
    missing = 0
    for _ in range(LOOPS):
        email = f"sr-{secrets.token_hex(5)}@example.com"
        created = await client.post("/api/users", json={"email": email, "password": "a-long-enough-password"})
        assert created.status_code == 201, created.text
        sent = {HEADER: created.headers[HEADER]} if echo else {}
        listed = await client.get("/api/users", headers=sent)
        assert listed.status_code == 200, listed.text
        missing += email not in {account["email"] for account in listed.json()}
    assert missing == 0
    after = await counted(client)
    assert after[("primary", "token_ahead")] > before.get(("primary", "token_ahead"), 0.0)


@slow
@pytest.mark.parametrize("echo", [True, False], ids=["token-echoed", "token-forgotten"])
async def test_an_import_just_submitted_is_found_at_once(client: httpx.AsyncClient, echo: bool) -> None:
    missing = 0
    for _ in range(LOOPS):
        name = f"sr-{secrets.token_hex(5)}"
        body = f'{{"name": "{name}", "email": "{name}@example.com", "specialty": "routing"}}\n'.encode()
        submitted = await client.post(
            "/api/developers/imports", content=body, headers={"content-type": "application/x-ndjson"}
        )
        assert submitted.status_code == 202, submitted.text
        sent = {HEADER: submitted.headers[HEADER]} if echo else {}
        found = await client.get(f"/api/imports/{submitted.json()['id']}", headers=sent)
        missing += found.status_code != 200
        listed = await client.get("/api/imports", params={"limit": 1}, headers=sent)
        missing += [job["id"] for job in listed.json()["items"]] != [submitted.json()["id"]]
    assert missing == 0


@slow
async def test_reads_with_nothing_to_wait_for_run_on_the_standby(client: httpx.AsyncClient) -> None:
    await asyncio.sleep(1.0)  # past the apply delay
    # An account with no write remembered here, whose own account row exists: the admin of the fixture's writes
    # is account 1, which exists only if the tests above ran; create the reader's account on the primary first.
    email = f"sr-{secrets.token_hex(5)}@example.com"
    created = await client.post("/api/users", json={"email": email, "password": "a-long-enough-password"})
    reader = created.json()["id"]
    await asyncio.sleep(1.0)
    before = await counted(client)
    headers = {"Authorization": f"Bearer {token('viewer', account_id=reader)}"}
    for _ in range(50):
        me = await client.get("/api/users/me", headers=headers)
        assert me.status_code == 200, me.text
        assert me.json()["email"] == email
    after = await counted(client)
    assert after[("replica", "fit")] - before.get(("replica", "fit"), 0.0) >= 45, (before, after)


@slow
async def test_a_standby_past_the_lag_bound_gets_no_reads_until_it_catches_up(pair: StreamingPair) -> None:
    settings = Settings(
        database_url=pair.primary_url,
        database_replica_urls=pair.standby_url,
        secret_key=TEST_SECRET,
        db_replica_max_lag_ms=1000,
    )
    app = create_app(settings)
    async with serve(app, bearer="viewer") as client:
        standby = app.state.replicas.standbys[0]
        await until(lambda: standby.usable(1.0), f"the standby measured usable: {standby}")
        # Replay paused, then a write on the primary: the standby stays behind, further every moment, until resumed.
        await run_sql(pair.standby_url, "SELECT pg_wal_replay_pause()")
        try:
            name = f"lag-{secrets.token_hex(5)}"
            await run_sql(
                pair.primary_url,
                f"INSERT INTO developers (name, email, specialty) VALUES ('{name}', '{name}@example.com', 'lag')",
            )
            await until(lambda: (standby.lag_seconds or 0.0) > 1.0, f"the standby measured behind: {standby}")
            before = await counted(client)
            for _ in range(20):
                page = await client.get("/api/developers", params={"limit": 1})
                assert page.status_code == 200, page.text
            behind = await counted(client)
        finally:
            await run_sql(pair.standby_url, "SELECT pg_wal_replay_resume()")

        def grown(reason: tuple[str, str]) -> float:
            return behind[reason] - before.get(reason, 0.0)

        assert grown(("replica", "fit")) == 0, (before, behind)
        # Lag, unless a sample of the monitor failed meanwhile (then the standby counts as down): never the standby.
        assert grown(("primary", "lag")) + grown(("primary", "host_down")) == 20, (before, behind)
        assert grown(("primary", "lag")) > 0, (before, behind)
        await until(lambda: standby.usable(1.0), f"the standby caught up: {standby}")
        for _ in range(20):
            assert (await client.get("/api/developers", params={"limit": 1})).status_code == 200
        caught_up = await counted(client)
        # Used again (all 20, unless this busy machine held the monitor back for a second).
        assert caught_up[("replica", "fit")] - behind[("replica", "fit")] >= 10, (behind, caught_up)
