"""The change feed under faults, as the tests drive it: followers (SSE and WebSocket clients that keep what they
receive), writers that keep a ledger of every write and its answer, a killer that terminates the service's
database backends, and the outbox every follower is checked against."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.client import TEST_SECRET, token
from tests.database import connect, fetch
from tests.developers.api import encode
from tests.processes import DEVDIR, environment, free_port, stop

EVENTS = "/api/developers/events"
LISTENER = "devdir change feed"  # the feed's listener connection's application_name
POOLED = "devdir"  # the request pool's


def cursor(event_id: str) -> tuple[int, int]:
    xid, _, number = event_id.partition("-")
    return int(xid), int(number)


# Followers


@dataclass
class Follower:
    """What one subscriber received, in order, over all its connections; `resyncs` counts the times the server
    told it to resume (it fell too far behind); `ended` says why it stopped following, if it did on its own."""

    name: str
    events: list[dict[str, Any]] = field(default_factory=list)
    resyncs: int = 0
    ended: str | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last(self) -> str | None:
        return self.events[-1]["id"] if self.events else None

    async def reach(self, target: str | None, seconds: float) -> bool:
        """Wait (at most `seconds`) until this follower has received the event `target` or one after it."""
        deadline = time.monotonic() + seconds
        while target is not None and (self.last is None or cursor(self.last) < cursor(target)):
            if self.ended is not None or time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def resynced(self, after: str | None) -> None:
        """The server ended this connection with a resync naming `after`: the last event it sent."""
        self.resyncs += 1
        if after != self.last and not (after is None and self.events == []):
            self.ended = f"a resync after {after}, but the last event received was {self.last}"


async def follow_sse(
    base_url: str,
    follower: Follower,
    *,
    after: str | None = None,
    last_event_id: str | None = None,
    stop_after: int | None = None,
) -> bool:
    """Read one SSE connection into `follower`; whether it ended with a resync. With `stop_after`, close the
    connection once the follower has that many events (over all its connections), as a client that goes away
    mid-stream."""
    headers = {"Authorization": f"Bearer {token('viewer')}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    params = {"after": after} if after is not None else {}
    timeout = httpx.Timeout(10, read=None)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=timeout) as client,
        client.stream("GET", EVENTS, params=params, headers=headers) as response,
    ):
        if response.status_code != 200:
            follower.ended = f"answered {response.status_code}: {(await response.aread()).decode()[:300]}"
            return False
        follower.connected.set()
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):  # a keepalive comment
                continue
            if line:
                key, _, value = line.partition(":")
                value = value.removeprefix(" ")
                fields[key] = f"{fields[key]}\n{value}" if key in fields else value
                continue
            message, fields = fields, {}
            if message.get("event") == "resync":
                follower.resynced(json.loads(message["data"])["after"])
                return True
            if "data" in message:
                event = json.loads(message["data"])
                if event.get("id") != message.get("id"):
                    follower.ended = f"an event whose SSE id {message.get('id')} is not its id {event.get('id')}"
                    return False
                follower.events.append(event)
                if stop_after is not None and len(follower.events) >= stop_after:
                    return False  # leaving the block closes the connection mid-stream
    follower.ended = "the server ended the stream"
    return False


async def follow_ws(base_url: str, follower: Follower, *, after: str | None = None, subprotocol: bool = False) -> bool:
    """Read one WebSocket connection into `follower`; whether it ended with a resync. The token goes as a
    header, or as the `bearer` subprotocol."""
    url = "ws" + base_url.removeprefix("http") + EVENTS + "/ws" + (f"?after={after}" if after is not None else "")
    bearer = token("viewer")
    options: dict[str, Any] = (
        {"subprotocols": ["bearer", bearer]}
        if subprotocol
        else {"additional_headers": {"Authorization": f"Bearer {bearer}"}}
    )
    async with websockets.connect(url, max_size=None, **options) as socket:
        follower.connected.set()
        async for message in socket:
            item = json.loads(message)
            if item.get("op") == "ping":
                continue
            if item.get("op") == "resync":
                follower.resynced(item["after"])
                return True
            follower.events.append(item)
        follower.ended = f"the server closed the socket ({socket.close_code} {socket.close_reason})"
    return False


async def keep_following(
    base_url: str, follower: Follower, after: str, *, socket: bool = False, subprotocol: bool = False
) -> None:
    """Follow from `after` as a client should: after a resync, reconnect from the last event received. SSE
    reconnects as EventSource does, with the URL it started with and Last-Event-ID."""
    while follower.ended is None:
        if socket:
            resynced = await follow_ws(base_url, follower, after=follower.last or after, subprotocol=subprotocol)
        else:
            resynced = await follow_sse(base_url, follower, after=after, last_event_id=follower.last)
        if not resynced:
            return


@contextlib.asynccontextmanager
async def running(*jobs: Coroutine[Any, Any, object], followers: list[Follower]) -> AsyncIterator[None]:
    """Run the followers' `jobs` in the background while the block runs; it starts once every follower is
    connected."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        connected = asyncio.ensure_future(asyncio.gather(*(f.connected.wait() for f in followers)))
        done, _ = await asyncio.wait([connected, *tasks], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        connected.cancel()
        for task in tasks:
            if task in done:
                task.result()  # a follower that failed to connect: raise its error here
        if not all(f.connected.is_set() for f in followers):
            pytest.fail(f"followers did not connect: {[(f.name, f.ended) for f in followers]}")
        yield
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
        if errors:
            raise errors[0]


# Writers


@dataclass(frozen=True)
class Write:
    """One write through the API: what its event is known by (`key`), its answer's status (0: no answer)."""

    kind: str
    key: Hashable
    status: int

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Ledger:
    writes: list[Write] = field(default_factory=list)

    def sent(self, kind: str, key: Hashable, response: httpx.Response | None) -> bool:
        status = 0 if response is None else response.status_code
        self.writes.append(Write(kind, key, status))
        return 200 <= status < 300

    @property
    def succeeded(self) -> list[Write]:
        return [w for w in self.writes if w.ok]

    @property
    def failed(self) -> list[Write]:
        return [w for w in self.writes if not w.ok]


async def _send(client: httpx.AsyncClient, method: str, path: str, **options: Any) -> httpx.Response | None:
    try:
        return await client.request(method, path, **options)
    except httpx.TransportError:
        return None


async def write_for(
    base_url: str, ledger: Ledger, writer: int, tag: str, stop: asyncio.Event, *, imports: bool = True
) -> None:
    """Write through the API until `stop`: creates, renames and deletes of this writer's own developers (each
    name and email used once, so an event names the write it came from), and small bulk imports."""
    rng = random.Random(f"{tag}-{writer}")
    own: list[int] = []
    headers = {"Authorization": f"Bearer {token('editor')}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        n = 0
        while not stop.is_set():
            n += 1
            roll = rng.random()
            if roll < 0.2 and own:
                developer = rng.choice(own)
                name = f"Renamed {writer}-{n} {tag}"
                response = await _send(client, "PATCH", f"/api/developers/{developer}", json={"name": name})
                ledger.sent("update", ("updated", developer, name), response)
            elif roll < 0.3 and own:
                developer = own.pop(rng.randrange(len(own)))  # never written again, whatever the answer
                response = await _send(client, "DELETE", f"/api/developers/{developer}")
                ledger.sent("delete", ("deleted", developer), response)
            elif roll < 0.45 and imports:
                rows = [
                    {
                        "name": f"Imported {writer}-{n}-{i}",
                        "email": f"i{writer}-{n}-{i}-{tag}@faults.io",
                        "specialty": s,
                    }
                    for i, s in enumerate(rng.choices(["alpha", "beta", "gamma"], k=rng.randint(2, 25)))
                ]
                response = await _send(
                    client,
                    "POST",
                    "/api/developers/bulk",
                    content=encode("ndjson", rows),
                    headers={"content-type": "application/x-ndjson"},
                )
                ledger.sent("import", ("imported", frozenset(r["email"] for r in rows)), response)
            else:
                email = f"w{writer}-{n}-{tag}@faults.io"
                body = {"name": f"Writer {writer}-{n}", "email": email, "specialty": rng.choice(["alpha", "beta"])}
                response = await _send(client, "POST", "/api/developers", json=body)
                if ledger.sent("create", ("created", email), response):
                    assert response is not None
                    own.append(response.json()["id"])


# The killer


@dataclass
class Killer:
    """Terminates the feed's listener backend and the pool's busy backends, over and over, until `stop`;
    `interrupted` counts what the pool's backends were doing when they were terminated."""

    database_url: str
    listener_kills: int = 0
    pooled_kills: int = 0
    interrupted: Counter[str] = field(default_factory=Counter)

    async def run(self, stop: asyncio.Event, every: float = 0.1, listener_every: int = 4) -> None:
        connection = await connect(self.database_url)
        try:
            round_ = 0
            while not stop.is_set():
                if round_ % listener_every == 0:
                    self.listener_kills += len(await _terminate(connection, "application_name = $1", LISTENER))
                else:  # connections of the pool that are in the middle of something
                    busy = "application_name = $1 AND state IN ('active', 'idle in transaction')"
                    doing = await _terminate(connection, busy, POOLED)
                    self.pooled_kills += len(doing)
                    self.interrupted.update(doing)
                round_ += 1
                await asyncio.sleep(every)
        finally:
            await connection.close()


async def _terminate(connection: Any, where: str, name: str) -> list[str]:
    """Terminate the backends of this database that match `where`; what each signalled one was doing."""
    # Chosen first, terminated after: the conditions of one WHERE may be evaluated in any order.
    query = (
        "WITH chosen AS MATERIALIZED (SELECT pid, state || ': ' || split_part(ltrim(query), ' ', 1) AS doing "
        f"FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND {where}) "
        "SELECT doing FROM chosen WHERE pg_terminate_backend(pid)"
    )
    return [row[0] for row in await connection.fetch(query, name)]


# The outbox


@dataclass(frozen=True)
class Outboxed:
    id: str
    op: str
    key: Hashable


async def latest_event(database_url: str) -> str:
    rows = await fetch(
        database_url, "SELECT xid::text AS xid_text, id FROM developer_events ORDER BY xid DESC, id DESC LIMIT 1"
    )
    return f"{rows[0][0]}-{rows[0][1]}" if rows else "0-0"


async def held_back(database_url: str, after: str, seconds: float = 60) -> float:
    """Wait until every committed event after `after` can be served, and return how long that took.

    An event is served only once every older transaction that took a transaction id has ended, anywhere on the
    server (transaction ids are the server's, not a database's): another database's open transaction holds
    these events back too.
    """
    xid, number = cursor(after)
    started = time.monotonic()
    connection = await connect(database_url)
    try:
        while await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM developer_events WHERE (xid, id) > ($1::text::xid8, $2) "
            "AND xid >= pg_snapshot_xmin(pg_current_snapshot()))",
            str(xid),
            number,
        ):
            if time.monotonic() - started > seconds:
                pytest.fail(f"events stayed held back by an open transaction for {seconds} s")
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    return time.monotonic() - started


async def outbox(database_url: str, after: str) -> list[Outboxed]:
    """Every committed event after `after`, in the feed's order, each with the key of the write it records."""
    xid, number = cursor(after)
    rows = await fetch(
        database_url,
        "SELECT xid::text AS xid_text, id, op, developer_id, developer->>'email', developer->>'name', bulk "
        "FROM developer_events "
        "WHERE (xid, id) > ($1::text::xid8, $2) ORDER BY xid, id",
        str(xid),
        number,
    )
    emails = {
        row[0]: row[1]
        for row in await fetch(database_url, "SELECT id, email FROM developers WHERE email LIKE '%@faults.io'")
    }
    events = []
    for xid_text, event_id, op, developer_id, email, name, bulk in rows:
        key: Hashable
        if op == "created":
            key = ("created", email)
        elif op == "updated":
            key = ("updated", developer_id, name)
        elif op == "deleted":
            key = ("deleted", developer_id)
        else:
            summary = json.loads(bulk)
            if summary["operation"] == "created" and summary["ids"] is not None:
                key = ("imported", frozenset(emails.get(i) for i in summary["ids"]))
            else:
                key = ("bulk", summary["operation"], summary["first_id"], summary["last_id"])
        events.append(Outboxed(f"{xid_text}-{event_id}", op, key))
    return events


@dataclass
class Delivery:
    """How one follower's events compare with the outbox."""

    follower: str
    delivered: int
    duplicates: int
    gaps: int
    unexpected: int
    out_of_order: int


def compare(follower: Follower, expected: list[Outboxed]) -> Delivery:
    ids = [event["id"] for event in follower.events]
    wanted = {e.id for e in expected}
    out_of_order = sum(1 for a, b in itertools.pairwise(ids) if cursor(a) >= cursor(b))
    return Delivery(
        follower=follower.name,
        delivered=len(ids),
        duplicates=len(ids) - len(set(ids)),
        gaps=len(wanted - set(ids)),
        unexpected=len(set(ids) - wanted),
        out_of_order=out_of_order,
    )


def unattributed(events: list[Outboxed], ledger: Ledger) -> tuple[Counter[Hashable], Counter[Hashable]]:
    """(events no 2xx write accounts for, 2xx writes with no event): both empty when the outbox is exactly the
    successful writes."""
    have = Counter(e.key for e in events)
    want = Counter(w.key for w in ledger.succeeded)
    return have - want, want - have


# Processes


@contextlib.contextmanager
def devdir_process(database_url: str, log: Path, **env: str) -> Iterator[str]:
    """`devdir run` on `database_url`, its output in `log`; its base URL once it is ready. Stopped with SIGTERM,
    and it must exit cleanly."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [DEVDIR, "run", "--port", str(port)],
            env=environment(DATABASE_URL=database_url, SECRET_KEY=TEST_SECRET, **env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    pytest.fail(f"devdir exited with {process.returncode}: {log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"devdir did not become ready: {log.read_text()[-3000:]}")
                time.sleep(0.2)
            yield base
        finally:
            stop(process, 30)
    assert process.returncode == 0, log.read_text()[-3000:]
