"""Reads on a real hot standby (tests/standby.py) that never show a client data older than its own writes: the
standby replays everything 500 ms late (`recovery_min_apply_delay`), so a read sent there right after a write would
miss it; the Consistency-Token (and, without it, the pod's memory of the account's last write) sends it where the
write is. Without any write to see, reads go to the standby (counted on /metrics)."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar import Litestar

from service.app import create_app
from service.core.settings import Settings
from service.db.consistency import HEADER, Tokens
from tests.client import TEST_SECRET, assert_problem, serve, token
from tests.polling import until
from tests.standby import StreamingPair, streaming_pair

slow = pytest.mark.slow  # starts two PostgreSQL servers of its own

DELAY = "500ms"
LOOPS = 50  # write-then-read loops per kind and mode here; the stale-read benchmark runs 2,000


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


def _reads(metrics: str) -> dict[tuple[str, str], float]:
    """devdir_db_reads_total's samples, by (target, reason)."""
    counted = {}
    for labels, value in re.findall(r"^devdir_db_reads_total\{([^}]*)\} (\S+)$", metrics, re.M):
        named = dict(re.findall(r'(\w+)="(\w*)"', labels))
        counted[named["target"], named["reason"]] = float(value)
    return counted


async def _counted(client: httpx.AsyncClient) -> dict[tuple[str, str], float]:
    return _reads((await client.get("/metrics")).text)


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
    counted = await _counted(client)
    assert counted[("primary", "token_ahead")] > 0  # the standby was really behind: reads had to go elsewhere


@slow
async def test_reads_with_nothing_to_wait_for_go_to_the_standby(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/developers", json=_new())
    developer_id = created.json()["id"]
    await asyncio.sleep(1.0)  # past the apply delay: the standby has it
    # Another account reads: this pod remembers account 7's write, not account 8's.
    before = await _counted(client)
    other = {"Authorization": f"Bearer {token('viewer', account_id=8)}"}
    for _ in range(100):
        got = await client.get(f"/api/developers/{developer_id}", headers=other)
        assert got.status_code == 200, got.text
    after = await _counted(client)
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
