"""Database faults under a stream of writes: every 2xx is in the table, and no 5xx left anything behind.

While clients write through every write route, another connection keeps terminating the service's backends
(`pg_terminate_backend`), mostly those idle inside a transaction: the moment between a handler's last statement
and its COMMIT. Afterwards each request is checked against the table, one by one: an answered 2xx must be there
(else the write was lost), a 503 must have left nothing (else it is a phantom), and no other status may appear.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import msgspec
import pytest
from litestar import Litestar

from service.app import create_app
from tests.client import TEST_SECRET, serve
from tests.database import connect, fetch, run_sql
from tests.pgbouncer import app_settings
from tests.postgresql_only import SESSIONS

pytestmark = SESSIONS

SECONDS = 2.5  # of writes per route
CLIENTS = 8
ROWS = 600  # developers made beforehand for the routes that change or remove them
GROUP = 5  # rows per batch or bulk request

# Idle in a transaction: the window between a write and its COMMIT, where an answer can already be on its way.
_IDLE = "state = 'idle in transaction'"
_KILL = """
    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = 'devdir' AND {which}"""


@dataclass
class Outcome:
    route: str
    statuses: dict[int, int] = field(default_factory=dict)
    lost: list[int] = field(default_factory=list)  # answered 2xx, not in the table
    phantom: list[int] = field(default_factory=list)  # answered 5xx, yet written
    torn: list[int] = field(default_factory=list)  # part of one request written

    def summary(self) -> str:
        return (
            f"{self.route}: {sum(self.statuses.values())} writes, statuses {dict(sorted(self.statuses.items()))}, "
            f"{len(self.lost)} lost, {len(self.phantom)} phantom, {len(self.torn)} torn"
        )


Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
# How many of request i's rows the table shows as written, out of how many it touched.
Written = Callable[[str, int], Awaitable[tuple[int, int]]]


async def _killer(database_url: str, stop: asyncio.Event) -> int:
    conn = await connect(database_url)
    killed = sweeps = 0
    try:
        while not stop.is_set():
            sweeps += 1
            which = "true" if sweeps % 10 == 0 else _IDLE  # now and then the busy ones too
            killed += await conn.fetchval(_KILL.format(which=which))
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    return killed


async def _drive(app: Litestar, database_url: str, send: Request) -> tuple[dict[int, int], int]:
    """Requests 0, 1, 2, ... from CLIENTS clients for SECONDS (at most ROWS // GROUP), under the killer."""
    answers: dict[int, int] = {}
    numbers = iter(range(ROWS // GROUP))
    deadline = time.monotonic() + SECONDS
    stop = asyncio.Event()

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in numbers:
            if time.monotonic() > deadline:
                return
            answers[i] = (await send(client, i)).status_code

    async with serve(app) as client:
        killer = asyncio.create_task(_killer(database_url, stop))
        try:
            await asyncio.gather(*(client_loop(client) for _ in range(CLIENTS)))
        finally:
            stop.set()
            killed = await killer
    return answers, killed


async def _judge(route: str, answers: dict[int, int], database_url: str, written: Written) -> Outcome:
    outcome = Outcome(route)
    for i, status in sorted(answers.items()):
        outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
        done, touched = await written(database_url, i)
        if 0 < done < touched:
            outcome.torn.append(i)
        elif 200 <= status < 300 and done == 0:
            outcome.lost.append(i)
        elif status >= 500 and done == touched:
            outcome.phantom.append(i)
    return outcome


def _email(i: int, k: int = 0) -> str:
    return f"fault{i}-{k}@x.io"


def _ids(i: int) -> list[int]:
    return list(range(i * GROUP + 1, (i + 1) * GROUP + 1))


async def _count(database_url: str, query: str, *args: object) -> int:
    return int((await fetch(database_url, query, *args))[0][0])


async def _created(database_url: str, i: int) -> tuple[int, int]:
    return await _count(database_url, "SELECT count(*) FROM developers WHERE email = $1", _email(i)), 1


async def _imported(database_url: str, i: int) -> tuple[int, int]:
    emails = [_email(i, k) for k in range(GROUP)]
    return await _count(database_url, "SELECT count(*) FROM developers WHERE email = ANY($1)", emails), GROUP


async def _renamed(database_url: str, i: int) -> tuple[int, int]:
    done = await _count(database_url, "SELECT count(*) FROM developers WHERE id = $1 AND name = 'changed'", i + 1)
    return done, 1


async def _batch_renamed(database_url: str, i: int) -> tuple[int, int]:
    query = "SELECT count(*) FROM developers WHERE id = ANY($1) AND name = 'changed'"
    return await _count(database_url, query, _ids(i)), GROUP


async def _removed(database_url: str, i: int) -> tuple[int, int]:
    return 1 - await _count(database_url, "SELECT count(*) FROM developers WHERE id = $1", i + 1), 1


async def _batch_removed(database_url: str, i: int) -> tuple[int, int]:
    return GROUP - await _count(database_url, "SELECT count(*) FROM developers WHERE id = ANY($1)", _ids(i)), GROUP


def _ndjson(i: int) -> bytes:
    rows = [{"name": f"F {i} {k}", "email": _email(i, k), "specialty": "fault"} for k in range(GROUP)]
    return b"".join(msgspec.json.encode(row) + b"\n" for row in rows)


ROUTES: dict[str, tuple[Request, Written]] = {
    "POST /api/developers": (
        lambda c, i: c.post("/api/developers", json={"name": f"F {i}", "email": _email(i), "specialty": "fault"}),
        _created,
    ),
    "PATCH /api/developers/{id}": (
        lambda c, i: c.patch(f"/api/developers/{i + 1}", json={"name": "changed"}),
        _renamed,
    ),
    "DELETE /api/developers/{id}": (lambda c, i: c.delete(f"/api/developers/{i + 1}"), _removed),
    "PATCH /api/developers (batch)": (
        lambda c, i: c.patch("/api/developers", json=[{"id": id_, "name": "changed"} for id_ in _ids(i)]),
        _batch_renamed,
    ),
    "POST /api/developers/bulk": (
        lambda c, i: c.post(
            "/api/developers/bulk", content=_ndjson(i), headers={"content-type": "application/x-ndjson"}
        ),
        _imported,
    ),
    "POST /api/developers/bulk-delete": (
        lambda c, i: c.post("/api/developers/bulk-delete", json={"ids": _ids(i)}),
        _batch_removed,
    ),
}


@pytest.mark.parametrize("route", ROUTES)
async def test_terminated_backends_lose_no_answered_write(route: str, database_url: str) -> None:
    await run_sql(
        database_url,
        "TRUNCATE developers RESTART IDENTITY",
        f"INSERT INTO developers (name, email, specialty) "
        f"SELECT 'Dev ' || n, 'dev' || n || '@x.io', 'fault' FROM generate_series(1, {ROWS}) AS n",
    )
    # Every client's upload streams at once (BULK_MAX_CONCURRENT is 4): with the uploads' own 503s, the clients
    # that get one spend the requests in a few milliseconds, and the killer, given no time, finds nothing to kill.
    settings = app_settings(
        database_url,
        db_pool_size=CLIENTS,
        db_max_overflow=0,
        bulk_max_concurrent=CLIENTS,
        secret_key=TEST_SECRET,
    )
    send, written = ROUTES[route]
    answers, killed = await _drive(create_app(settings), database_url, send)
    outcome = await _judge(route, answers, database_url, written)
    print(f"\n{outcome.summary()}; {killed} backends terminated")  # the closing note's figures, with -s
    assert killed > 0, "no backend was terminated: the test exercised nothing"
    assert set(outcome.statuses) <= {200, 201, 204, 503}, outcome.summary()
    assert not outcome.lost, outcome.summary()
    assert not outcome.phantom, outcome.summary()
    assert not outcome.torn, outcome.summary()
