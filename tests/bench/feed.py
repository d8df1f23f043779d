"""Change-feed benchmark: delivery latency, fan-out to many WebSocket subscribers, and imports with the feed on
and off, in one run.

    uv run python -m tests.bench.feed [--rate 200] [--writers 8] [--duration 10] [--subscribers 1000]
        [--fanout-rate 10] [--fanout-duration 10] [--client-processes 2] [--rows 1000000] [--repeat 3]
        [--skip latency,fanout,import]

Fresh databases on TEST_DATABASE_URL's server (or an embedded PostgreSQL), each served by `devdir run` with one
granian worker, the production command, with the feed's default settings:

1. Latency. --writers clients POST single developers at --rate writes/s in total for --duration s, while one SSE
   and one WebSocket subscriber follow the feed from a process of their own. Latency is the time from the
   writer's 201 (the transaction has committed before the answer leaves) to the subscriber's receipt of that
   developer's event, both read from the machine's monotonic clock (CLOCK_MONOTONIC, shared by all processes).
   The commit comes between the POST being sent and its 201 arriving, so the same figure from the POST being
   sent is printed too: the two bracket commit -> receipt.
2. Fan-out. --subscribers WebSocket subscribers on the same worker (GRANIAN_BACKPRESSURE raised above them),
   split across --client-processes processes, then writes at --fanout-rate/s for --fanout-duration s: how many
   connected, how many of the events written each one received, the latency over every (subscriber, event)
   pair and per event from its first receipt to its last, the worker's resident memory before and after, and
   the CPU the worker and the subscriber processes used.
3. Import. --rows developers as one NDJSON stream through POST /api/developers/bulk, on a database with the
   change feed on (the migrations' triggers, one WebSocket subscriber following) and on one with the outbox
   triggers disabled (off), alternating (on off, off on, ...), best of --repeat: rows/s, the on/off ratio, the
   events and the notifications each import produced, the time spent in the trigger functions
   (track_functions, set on the feed-on database), and the workers' peak RSS.

Subscribers are let in (and known to be registered with the feed) before anything is measured: probe writes
are made until every subscriber has received one. Before each import the table is truncated, vacuumed and a
CHECKPOINT taken, and it is truncated again right after, so every import starts from the same state and no
autovacuum of one runs into the next.

Any transaction holding a transaction id, in any database of the server, holds back every event committed after
it began (events are served below the snapshot's xmin: service.developers.events.store), and its end notifies
nobody (the feed polls every 0.05 s while events are pending). On a shared server, the run samples such
transactions (other databases', autovacuum's) every 50 ms during parts 1 and 2, and prints the latencies of the
events none of them held back as well.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import resource
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import asyncpg
import httpx
import msgspec
import uvloop
import websockets
from sqlalchemy.engine import make_url
from websockets.typing import Subprotocol

from service.accounts.auth import TokenIssuer, build_auth
from service.core.settings import Settings
from service.developers.events.feed import PENDING_POLL_SECONDS
from tests.bench.servers import BIN, cpu_seconds, memory_mb, serving, worker_pid
from tests.database import connect, fetchval, fresh_database, run_sql, server_url

FEED_PORT, ON_PORT, OFF_PORT = 8831, 8832, 8833
OUTBOX_TRIGGERS = ("developer_events_insert", "developer_events_update", "developer_events_delete")
CONNECTING = 50  # subscribers opening their connection at once, per process


def person(i: int) -> dict[str, str]:
    return {"name": f"Feed Dev {i:07d}", "email": f"feed{i}@bench.example.com", "specialty": f"spec{i % 20:02d}"}


async def until(condition: Callable[[], bool], seconds: float, every: float = 0.05) -> bool:
    """Wait until `condition()` holds, at most `seconds`; whether it does."""
    deadline = time.monotonic() + seconds
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(every)


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)] if ordered else float("nan")


# Subscribers: run in processes of their own, so their receipt times do not wait on the writers' event loop.


class _Bulk(msgspec.Struct):
    count: int


class _Seen(msgspec.Struct):
    op: str
    developer_id: int | None = None
    bulk: _Bulk | None = None


_SEEN = msgspec.json.Decoder(_Seen)


@dataclass
class Follower:
    """One subscriber: when it received each developer's `created` event; its bulk events; its resyncs."""

    kind: str  # "ws" or "sse"
    received: dict[int, int] = field(default_factory=dict)  # developer id -> perf_counter_ns at receipt
    bulk_events: int = 0
    bulk_rows: int = 0
    resyncs: int = 0
    connected: bool = False
    ended: bool = False  # the server ended the stream (a resync, an error)
    error: str | None = None

    def seen(self, data: str | bytes, at: int) -> None:
        event = _SEEN.decode(data)
        if event.op == "created" and event.developer_id is not None:
            self.received.setdefault(event.developer_id, at)
        elif event.op == "bulk" and event.bulk is not None:
            self.bulk_events += 1
            self.bulk_rows += event.bulk.count
        elif event.op == "resync":
            self.resyncs += 1

    async def follow(self, base: str, token: str, opening: asyncio.Semaphore) -> None:
        try:
            if self.kind == "ws":
                await self._follow_socket(base, token, opening)
            else:
                await self._follow_sse(base, token, opening)
            self.ended = True
        except (OSError, TimeoutError, websockets.WebSocketException, httpx.HTTPError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:200]
            self.ended = True

    async def _follow_socket(self, base: str, token: str, opening: asyncio.Semaphore) -> None:
        url = "ws" + base.removeprefix("http") + "/api/developers/events/ws"
        async with opening:
            socket = await websockets.connect(
                url,
                subprotocols=[Subprotocol("bearer"), Subprotocol(token)],
                open_timeout=60,
                ping_interval=None,  # no client pings: the server's keepalive is what is measured
                close_timeout=2,
            )
        self.connected = True
        async with socket:
            async for message in socket:
                self.seen(message, time.perf_counter_ns())

    async def _follow_sse(self, base: str, token: str, opening: asyncio.Semaphore) -> None:
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=httpx.Timeout(60, read=None)) as client:
            async with opening:
                stream = client.stream("GET", "/api/developers/events")
                response = await stream.__aenter__()
            try:
                response.raise_for_status()
                self.connected = True
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        self.seen(line[5:].strip(), time.perf_counter_ns())
            finally:
                await stream.__aexit__(None, None, None)


def subscriber_process(pipe: Connection, base: str, token: str, kinds: list[str]) -> None:
    """A process of subscribers (one per item of `kinds`), driven by the benchmark through `pipe`:
    -> ("connected", n, errors); -> ("primed", n) once each has received an event (the benchmark writes probes);
    <- ("collect", ids, seconds); -> ("results", ...) once each has every event of `ids`, or after `seconds`."""
    uvloop.run(_subscribers(pipe, base, token, kinds))


async def _subscribers(pipe: Connection, base: str, token: str, kinds: list[str]) -> None:
    followers = [Follower(kind) for kind in kinds]
    opening = asyncio.Semaphore(CONNECTING)
    tasks = [asyncio.create_task(follower.follow(base, token, opening)) for follower in followers]
    await until(lambda: all(f.connected or f.ended for f in followers), 120)
    live = [f for f in followers if f.connected]
    pipe.send(("connected", len(live), sorted({f.error for f in followers if f.error})[:5]))
    await until(lambda: all(f.received or f.ended for f in live), 60)
    pipe.send(("primed", sum(1 for f in live if f.received)))
    cpu, wall = _own_cpu(), time.perf_counter()
    _, ids, seconds = await asyncio.to_thread(pipe.recv)
    expected = set(ids)
    await until(lambda: all(expected.issubset(f.received) or f.ended for f in live), seconds)
    cpu, wall = _own_cpu() - cpu, time.perf_counter() - wall
    results = [
        (f.kind, f.connected, f.ended, f.error, f.resyncs, {i: f.received[i] for i in expected if i in f.received})
        for f in followers
    ]
    pipe.send(("results", results, cpu, wall))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Received:
    """What the subscriber processes report."""

    followers: list[tuple[str, bool, bool, str | None, int, dict[int, int]]]
    cpu: list[float]  # seconds of CPU per process, while the writes ran and the events arrived
    wall: float


class Subscribers:
    """Subscriber processes, each with its share of the subscribers."""

    def __init__(self, base: str, token: str, groups: list[list[str]]) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for kinds in groups:
            ours, theirs = context.Pipe()
            process = context.Process(target=subscriber_process, args=(theirs, base, token, kinds), daemon=True)
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)

    async def connected(self) -> tuple[int, list[str]]:
        answers = await asyncio.gather(*(asyncio.to_thread(pipe.recv) for pipe in self.pipes))
        return sum(a[1] for a in answers), [error for a in answers for error in a[2]]

    async def prime(self, client: httpx.AsyncClient, first: int) -> tuple[int, int]:
        """Write probes until every subscriber has received one: then each is registered with the feed.
        The number of subscribers primed, and the next free developer number."""
        waiting, primed, i = set(range(len(self.pipes))), 0, first
        while waiting:
            await post(client, i)
            i += 1
            await asyncio.sleep(0.25)
            for n in list(waiting):
                if self.pipes[n].poll():
                    primed += self.pipes[n].recv()[1]
                    waiting.discard(n)
        return primed, i

    async def collect(self, ids: list[int], seconds: float) -> Received:
        for pipe in self.pipes:
            pipe.send(("collect", ids, seconds))
        answers = await asyncio.gather(*(asyncio.to_thread(pipe.recv) for pipe in self.pipes))
        for process in self.processes:
            await asyncio.to_thread(process.join, 30)
        return Received([f for a in answers for f in a[1]], [a[2] for a in answers], max(a[3] for a in answers))

    def stop(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(10)


# Writers


async def post(client: httpx.AsyncClient, i: int) -> tuple[int, int]:
    """POST one developer: its id, and when the 201 arrived (perf_counter_ns)."""
    response = await client.post("/api/developers", json=person(i))
    arrived = time.perf_counter_ns()
    if response.status_code != 201:
        raise SystemExit(f"POST /api/developers: {response.status_code} {response.text[:300]}")
    return response.json()["id"], arrived


@dataclass
class Writes:
    committed: dict[int, int]  # developer id -> when its 201 arrived (perf_counter_ns)
    sent: dict[int, int]  # developer id -> when its POST was sent: the commit came between the two
    response_ms: list[float]
    seconds: float


async def write_load(client: httpx.AsyncClient, first: int, rate: float, writers: int, seconds: float) -> Writes:
    """`writers` clients, each posting on its own schedule, `rate` writes/s in all (a writer that falls behind
    posts at once), for `seconds`."""
    total = int(rate * seconds)
    committed: dict[int, int] = {}
    posted: dict[int, int] = {}
    response_ms: list[float] = []
    start = time.perf_counter()

    async def writer(k: int) -> None:
        for n in range(k, total, writers):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = time.perf_counter_ns()
            developer_id, arrived = await post(client, first + n)
            committed[developer_id] = arrived
            posted[developer_id] = sent
            response_ms.append((arrived - sent) / 1e6)

    await asyncio.gather(*(writer(k) for k in range(writers)))
    return Writes(committed, posted, response_ms, time.perf_counter() - start)


def latencies_ms(committed: dict[int, int], received: dict[int, int]) -> list[float]:
    return sorted((received[i] - at) / 1e6 for i, at in committed.items() if i in received)


class HeldBack:
    """Samples, every 50 ms, the transactions holding a transaction id that are not the service's own requests:
    those of other databases, and background ones (autovacuum's ANALYZE) in this one. While one is open, no event
    committed after it began can be served, and nothing notifies the feed when it ends (it polls)."""

    QUERY = """SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)::float8
               FROM pg_stat_activity WHERE backend_xid IS NOT NULL
               AND (datname IS DISTINCT FROM current_database() OR backend_type <> 'client backend')"""

    def __init__(self, url: str) -> None:
        self.url = url
        self.timeline: list[tuple[int, float]] = []  # (perf_counter_ns, age in s of the oldest such transaction)

    @contextlib.asynccontextmanager
    async def sampling(self) -> AsyncIterator[HeldBack]:
        connection = await connect(self.url)

        async def sample() -> None:
            while True:
                age = await connection.fetchval(self.QUERY)
                self.timeline.append((time.perf_counter_ns(), age))
                await asyncio.sleep(0.05)

        task = asyncio.create_task(sample())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await connection.close()

    def explains(self, committed: int, latency_ms: float) -> bool:
        """Whether a sampled transaction that began before this commit was still open after it."""
        return any(
            age > 0 and committed <= at <= committed + latency_ms * 1e6 and at - age * 1e9 <= committed
            for at, age in self.timeline
        )

    def held(self, committed: dict[int, int], received: dict[int, int]) -> set[int]:
        """The developer ids whose event was held back by such a transaction (by its first receipt)."""
        return {i for i, at in committed.items() if i in received and self.explains(at, (received[i] - at) / 1e6)}

    def summary(self, committed: dict[int, int], received: dict[int, int], slow_ms: float) -> str:
        held = self.held(committed, received)
        slow = {i for i, at in committed.items() if (received.get(i, at) - at) / 1e6 > slow_ms}
        seen = sum(age > 0 for _, age in self.timeline)
        longest = max((age for _, age in self.timeline), default=0.0)
        return (
            f"{len(held)} events held back by an xid-holding transaction of another database or autovacuum "
            f"(open in {seen} of {len(self.timeline)} samples, the longest {longest * 1000:.0f} ms); "
            f"{len(slow & held)} of the {len(slow)} events over {slow_ms:.0f} ms were"
        )


# 1 and 2: latency, fan-out


@dataclass
class LatencyResult:
    writes: Writes
    followers: dict[str, tuple[int, list[float]]]  # kind -> (events received of those written, latencies ms)
    free: dict[str, list[float]]  # kind -> latencies of the events no outside transaction held back
    from_sent: dict[str, list[float]]  # kind -> latencies from the POST being sent (an upper bound)
    cpu: float
    held: str


@dataclass
class FanOutResult:
    connect_seconds: float
    connected: int
    errors: list[str]
    primed: int
    writes: Writes
    counts: list[int]  # events received per subscriber, of those written
    resyncs: int
    latencies: list[float]
    free: list[float]  # the pairs of the events no outside transaction held back
    free_events: int
    first: list[float]  # per event: to its first receipt
    spread: list[float]  # per event: from its first receipt to its last (the fan-out to every subscriber)
    rss: dict[str, float]
    worker_cpu: float
    client_cpu: list[float]
    wall: float
    held: str


async def latency(base: str, url: str, args: argparse.Namespace, tokens: dict[str, str]) -> LatencyResult:
    subscribers = Subscribers(base, tokens["viewer"], [["sse", "ws"]])
    try:
        async with client_for(base, tokens["editor"], args.writers) as client:
            connected, errors = await subscribers.connected()
            if connected != 2:
                raise SystemExit(f"latency subscribers: {connected} of 2 connected: {errors}")
            _, start = await subscribers.prime(client, 0)
            async with HeldBack(url).sampling() as held:
                writes = await write_load(client, start, args.rate, args.writers, args.duration)
                received = await subscribers.collect(list(writes.committed), 15)
    finally:
        subscribers.stop()
    got = {kind: receipts for kind, _, _, _, _, receipts in received.followers}
    first = {i: min(receipts[i] for receipts in got.values() if i in receipts) for i in writes.committed}
    outside = held.held(writes.committed, first)
    free = {i: at for i, at in writes.committed.items() if i not in outside}
    return LatencyResult(
        writes,
        {kind: (len(receipts), latencies_ms(writes.committed, receipts)) for kind, receipts in got.items()},
        {kind: latencies_ms(free, receipts) for kind, receipts in got.items()},
        {kind: latencies_ms(writes.sent, receipts) for kind, receipts in got.items()},
        received.cpu[0] / received.wall,
        held.summary(writes.committed, first, 20),
    )


async def fan_out(
    base: str, url: str, server: int, args: argparse.Namespace, tokens: dict[str, str], first: int
) -> FanOutResult:
    worker = worker_pid(server)
    rss = {"before": memory_mb(worker)}
    share = [args.subscribers // args.client_processes] * args.client_processes
    share[0] += args.subscribers - sum(share)
    subscribers = Subscribers(base, tokens["viewer"], [["ws"] * n for n in share])
    try:
        async with client_for(base, tokens["editor"], 4) as client:
            opening = time.perf_counter()
            connected, errors = await subscribers.connected()
            connect_seconds = time.perf_counter() - opening
            primed, first = await subscribers.prime(client, first)
            await asyncio.sleep(1)
            rss["connected"] = memory_mb(worker)
            async with HeldBack(url).sampling() as held:
                cpu = cpu_seconds(worker)
                writes = await write_load(client, first, args.fanout_rate, 4, args.fanout_duration)
                received = await subscribers.collect(list(writes.committed), 30)
                worker_cpu = (cpu_seconds(worker) - cpu) / received.wall
            rss["after writes"] = memory_mb(worker)
    finally:
        subscribers.stop()
    await asyncio.sleep(2)
    rss["disconnected"] = memory_mb(worker)
    rss["peak (VmHWM)"] = memory_mb(worker, "VmHWM")
    live = [f for f in received.followers if f[1]]
    earliest: dict[int, int] = {}
    latest: dict[int, int] = {}
    for f in live:
        for i, at in f[5].items():
            earliest[i] = min(at, earliest.get(i, at))
            latest[i] = max(at, latest.get(i, at))
    outside = held.held(writes.committed, earliest)
    free = {i: at for i, at in writes.committed.items() if i not in outside}
    return FanOutResult(
        connect_seconds=connect_seconds,
        connected=connected,
        errors=errors,
        primed=primed,
        writes=writes,
        counts=[len(f[5]) for f in live],
        resyncs=sum(f[4] for f in live),
        latencies=sorted(lat for f in live for lat in latencies_ms(writes.committed, f[5])),
        free=sorted(lat for f in live for lat in latencies_ms(free, f[5])),
        free_events=len(free),
        first=latencies_ms(writes.committed, earliest),
        spread=sorted((latest[i] - earliest[i]) / 1e6 for i in earliest),
        rss=rss,
        worker_cpu=worker_cpu,
        client_cpu=[c / received.wall for c in received.cpu],
        wall=received.wall,
        held=held.summary(writes.committed, earliest, 100),
    )


@contextlib.asynccontextmanager
async def client_for(base: str, token: str, connections: int) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
        yield client


# 3: the import, feed on and off


def ndjson(rows: int, per_chunk: int = 5000) -> list[bytes]:
    return [
        b"".join(msgspec.json.encode(person(i)) + b"\n" for i in range(first, min(first + per_chunk, rows)))
        for first in range(0, rows, per_chunk)
    ]


@dataclass
class ImportRun:
    seconds: float
    events: int  # rows the import added to developer_events
    bulk_rows: int  # the rows those events account for
    notifications: int  # received by a LISTEN on the import's database
    followed: tuple[int, int] | None  # bulk events and rows a WebSocket subscriber received (feed on)
    trigger_ms: float | None  # time spent in the outbox trigger functions (track_functions; feed on)
    retries: int = 0  # attempts refused for want of a database connection, before this one


_TRIGGER_TIME = """SELECT coalesce(sum(calls), 0)::bigint, coalesce(sum(total_time), 0)::float8
                   FROM pg_stat_user_functions WHERE funcname = ANY($1::text[])"""


class DatabaseFull(Exception):
    """The server refused a connection (max_connections, shared with whatever else runs on it)."""


async def import_retried(port: int, url: str, body: list[bytes], token: str, follow: bool) -> ImportRun:
    """An import, again after a pause when the database server had no connection to spare (the service's 503, or
    the benchmark's own connection refused); each retry is counted in the run."""
    for retries in range(5):
        try:
            run = await import_once(port, url, body, token, follow)
        except (DatabaseFull, asyncpg.TooManyConnectionsError) as exc:
            print(f"  import, feed {'on' if follow else 'off'}: the database server is full ({exc}); again in 5 s")
            await asyncio.sleep(5)
            continue
        run.retries = retries
        return run
    raise SystemExit("import: the database server stayed full")


async def import_once(port: int, url: str, body: list[bytes], token: str, follow: bool) -> ImportRun:
    rows = sum(chunk.count(b"\n") for chunk in body)
    await run_sql(url, "TRUNCATE developers RESTART IDENTITY", "VACUUM ANALYZE developers", "CHECKPOINT")
    before = await fetchval(url, "SELECT coalesce(max(id), 0) FROM developer_events")
    listener = await connect(url)
    calls, spent = await listener.fetchrow(_TRIGGER_TIME, list(OUTBOX_TRIGGERS))
    notifications: list[object] = []
    await listener.add_listener("developer_events", lambda *note: notifications.append(note))
    base = f"http://127.0.0.1:{port}"
    follower = Follower("ws")
    following = asyncio.create_task(follower.follow(base, token, asyncio.Semaphore(1))) if follow else None
    try:
        await until(lambda: following is None or follower.connected or follower.ended, 30)

        async def stream() -> AsyncIterator[bytes]:
            for chunk in body:
                yield chunk

        headers = {"content-type": "application/x-ndjson", "authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=None) as client:
            started = time.perf_counter()
            response = await client.post(f"{base}/api/developers/bulk", content=stream(), headers=headers)
            seconds = time.perf_counter() - started
        if response.status_code == 503:
            raise DatabaseFull(response.text[:300])
        if response.status_code != 201 or response.json().get("created") != rows:
            raise SystemExit(f"import: {response.status_code} {response.text[:300]}")
        await until(lambda: following is None or follower.bulk_rows >= rows, 5)
        await asyncio.sleep(0.2)  # a notification is delivered at commit; let it arrive
        events, bulk_rows = await listener.fetchrow(
            "SELECT count(*), coalesce(sum((bulk->>'count')::bigint), count(developer_id))::bigint "
            "FROM developer_events WHERE id > $1",
            before,
        )
        calls_after, spent_after = calls, spent
        deadline = time.monotonic() + 5  # a backend reports its function times once idle, at most once a second
        while follow and time.monotonic() < deadline:
            calls_after, spent_after = await listener.fetchrow(_TRIGGER_TIME, list(OUTBOX_TRIGGERS))
            if calls_after >= calls + events:
                break
            await asyncio.sleep(0.1)
        await listener.execute("TRUNCATE developers RESTART IDENTITY")  # nothing left for autovacuum to do
    finally:
        if following is not None:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
        await listener.close()
    followed = (follower.bulk_events, follower.bulk_rows) if follow else None
    trigger_ms = spent_after - spent if follow and calls_after >= calls + events else None
    return ImportRun(seconds, events, bulk_rows, len(notifications), followed, trigger_ms)


# The run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200, help="writes/s in all, part 1")
    parser.add_argument("--writers", type=int, default=8, help="concurrent writers, part 1")
    parser.add_argument("--duration", type=float, default=10, help="seconds of writes, part 1")
    parser.add_argument("--subscribers", type=int, default=1000, help="WebSocket subscribers, part 2")
    parser.add_argument("--fanout-rate", type=float, default=10, help="writes/s, part 2")
    parser.add_argument("--fanout-duration", type=float, default=10, help="seconds of writes, part 2")
    parser.add_argument("--client-processes", type=int, default=2, help="processes the subscribers of part 2 share")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per import, part 3")
    parser.add_argument("--repeat", type=int, default=3, help="imports with the feed on, and off; the best is kept")
    parser.add_argument("--skip", default="", help="comma-separated parts not to run: latency,fanout,import")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.subscribers * 2 + 1024  # the worker's sockets (inherited by the servers) and the clients'
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    secret = secrets.token_urlsafe(48)
    issuer = TokenIssuer(build_auth(Settings(secret_key=secret)))
    tokens = {"editor": issuer.issue(1, "editor"), "viewer": issuer.issue(1, "viewer")}
    settings = Settings()
    backpressure = max(1024, args.subscribers + 1024)  # production's 1024 would leave 24 places at 1,000
    load_before = os.getloadavg()
    started = time.monotonic()
    lat: LatencyResult | None = None
    fan: FanOutResult | None = None
    runs: dict[str, list[ImportRun]] = {"on": [], "off": []}
    peaks: dict[str, tuple[float, float]] = {}
    service = [str(BIN / "devdir"), "run", "--workers", "1", "--port"]

    with server_url() as server:
        version = asyncio.run(fetchval(server, "SHOW server_version"))
        if not {"latency", "fanout"} <= skip:
            with fresh_database(server) as url:
                env = os.environ | {"DATABASE_URL": url, "SECRET_KEY": secret}
                env |= {"GRANIAN_BACKPRESSURE": str(backpressure)}
                base = f"http://127.0.0.1:{FEED_PORT}"
                with serving([*service, str(FEED_PORT)], env, FEED_PORT) as process:
                    if "latency" not in skip:
                        lat = uvloop.run(latency(base, url, args, tokens))
                    if "fanout" not in skip:
                        fan = uvloop.run(fan_out(base, url, process.pid, args, tokens, 10_000_000))
        if "import" not in skip:
            body = ndjson(args.rows)
            with fresh_database(server) as on_url, fresh_database(server) as off_url:
                disable = (f"ALTER TABLE developers DISABLE TRIGGER {t}" for t in OUTBOX_TRIGGERS)
                asyncio.run(run_sql(off_url, *disable))
                # The time spent in the triggers, for every session the service opens (set before it starts).
                on_name = make_url(on_url).database
                asyncio.run(run_sql(on_url, f"ALTER DATABASE \"{on_name}\" SET track_functions = 'pl'"))
                urls = {"on": on_url, "off": off_url}
                ports = {"on": ON_PORT, "off": OFF_PORT}
                with contextlib.ExitStack() as servers:
                    workers = {}
                    for mode, port in ports.items():
                        env = os.environ | {"DATABASE_URL": urls[mode], "SECRET_KEY": secret}
                        workers[mode] = worker_pid(servers.enter_context(serving([*service, str(port)], env, port)).pid)
                    # A first, unmeasured small import on each: imports, statement caches, the pool.
                    for mode in ports:
                        uvloop.run(import_retried(ports[mode], urls[mode], body[:2], tokens["editor"], mode == "on"))
                    before = {mode: memory_mb(pid, "VmHWM") for mode, pid in workers.items()}
                    for repeat in range(args.repeat):  # on off, off on, on off, ...: drift falls on both alike
                        for mode in ("on", "off") if repeat % 2 == 0 else ("off", "on"):
                            run_ = uvloop.run(
                                import_retried(ports[mode], urls[mode], body, tokens["editor"], mode == "on")
                            )
                            runs[mode].append(run_)
                            print(f"  import, feed {mode:<3}  {args.rows / run_.seconds:>10,.0f} rows/s", flush=True)
                    peaks = {mode: (before[mode], memory_mb(pid, "VmHWM")) for mode, pid in workers.items()}

    print(
        f"\nChange feed: `devdir run`, one granian worker; PostgreSQL {version}; {os.cpu_count()} CPUs; "
        f"load average {load_before[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
        f"{time.monotonic() - started:.0f} s"
    )
    print(
        f"Feed settings (defaults): EVENTS_POLL_SECONDS={settings.events_poll_seconds} (the poll without a "
        f"notification), {PENDING_POLL_SECONDS} s while events wait for an older transaction; "
        f"EVENTS_QUEUE_SIZE={settings.events_queue_size}; DB_POOL_SIZE={settings.db_pool_size}"
    )
    if lat is not None:
        report_latency(args, lat)
    if fan is not None:
        report_fan_out(args, fan, backpressure, open_files)
    if runs["on"] and runs["off"]:
        report_import(args, runs, peaks)


def _ms(values: list[float]) -> str:
    return "".join(f"{percentile(values, q):>9.1f}" for q in (0.5, 0.99, 1.0)) + f"{values[0] if values else 0:>9.1f}"


def report_latency(args: argparse.Namespace, lat: LatencyResult) -> None:
    w = lat.writes
    print(
        f"\n1. Delivery latency: {len(w.committed):,} single-row POSTs by {args.writers} writers, {args.rate:.0f}/s "
        f"asked, {len(w.committed) / w.seconds:.0f}/s done, over {w.seconds:.1f} s; ms from the writer's 201 to the "
        "subscriber's receipt"
    )
    print(f"   {'subscriber':<12}{'received':>14}{'p50':>9}{'p99':>9}{'max':>9}{'min':>9}  before the 201")
    for kind, label in (("sse", "SSE"), ("ws", "WebSocket")):
        count, values = lat.followers[kind]
        early = sum(v < 0 for v in values) / max(len(values), 1)
        print(f"   {label:<12}{f'{count:,}/{len(w.committed):,}':>14}{_ms(values)}  {early:>6.0%}")
        free = lat.free[kind]
        print(f"   {'  not held':<12}{f'{len(free):,}':>14}{_ms(free)}  (events no outside transaction held back)")
        print(f"   {'  from POST':<12}{'':>14}{_ms(lat.from_sent[kind])}  (from the POST being sent: an upper bound)")
    print(f"   {'POST 201':<12}{'':>14}{_ms(sorted(w.response_ms))}  (the writes' own response times)")
    print(f"   {lat.held}")
    print(f"   subscriber process CPU {lat.cpu:.0%} of a core")


def report_fan_out(args: argparse.Namespace, fan: FanOutResult, backpressure: int, open_files: int) -> None:
    sent = len(fan.writes.committed)
    complete = sum(1 for c in fan.counts if c == sent)
    print(
        f"\n2. Fan-out: {args.subscribers:,} WebSocket subscribers on one worker, from {args.client_processes} "
        f"client processes; GRANIAN_BACKPRESSURE={backpressure}, open files limit {open_files:,}"
    )
    print(
        f"   connected {fan.connected:,}/{args.subscribers:,} in {fan.connect_seconds:.1f} s; "
        f"received a probe event {fan.primed:,}" + (f"; errors {fan.errors}" if fan.errors else "")
    )
    print(
        f"   writes {sent:,} at {sent / fan.writes.seconds:.1f}/s ({args.fanout_rate:.0f}/s asked), "
        f"{sent * fan.connected:,} deliveries due; per subscriber received min {min(fan.counts, default=0):,}, "
        f"max {max(fan.counts, default=0):,} of {sent:,}; {complete:,} received all; resyncs {fan.resyncs}"
    )
    print(f"   {'ms, 201 -> receipt':<24}{'p50':>9}{'p99':>9}{'max':>9}{'min':>9}  over {len(fan.latencies):,} pairs")
    print(f"   {'every subscriber':<24}{_ms(fan.latencies)}")
    print(f"   {'  events not held':<24}{_ms(fan.free)}  {fan.free_events:,} events, {len(fan.free):,} pairs")
    print(f"   {'first subscriber':<24}{_ms(fan.first)}  per event, to its first receipt")
    print(f"   {'first -> last receipt':<24}{_ms(fan.spread)}  per event: reaching every subscriber")
    print(f"   {fan.held}")
    per = (fan.rss["connected"] - fan.rss["before"]) * 1024 / max(fan.connected, 1)
    print("   worker RSS: " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in fan.rss.items()) + f"; {per:.0f} kB each")
    print(
        f"   CPU over the writes and deliveries ({fan.wall:.1f} s): worker {fan.worker_cpu:.0%}, subscriber "
        "processes " + " and ".join(f"{c:.0%}" for c in fan.client_cpu) + " of a core"
    )


def report_import(
    args: argparse.Namespace, runs: dict[str, list[ImportRun]], peaks: dict[str, tuple[float, float]]
) -> None:
    best = {mode: min(r.seconds for r in runs[mode]) for mode in runs}
    rate = {mode: args.rows / seconds for mode, seconds in best.items()}
    expected = 1 + math.ceil(max(args.rows - 1000, 0) / 10_000)
    print(
        f"\n3. Import of {args.rows:,} developers, one NDJSON request (POST /api/developers/bulk), "
        f"alternating (on off, off on, ...), best of {args.repeat}"
    )
    print(
        f"   {'feed':<6}{'rows/s':>10}{'best s':>8}  {'each run, k rows/s':<22}{'events':>8}{'rows':>12}"
        f"{'notifies':>10}{'trigger ms':>12}{'peak RSS MB':>14}"
    )
    for mode in ("on", "off"):
        each = " ".join(f"{args.rows / r.seconds / 1000:.0f}" for r in runs[mode])
        events = "/".join(sorted({str(r.events) for r in runs[mode]}))
        rows = "/".join(sorted({f"{r.bulk_rows:,}" for r in runs[mode]}))
        notes = "/".join(sorted({str(r.notifications) for r in runs[mode]}))
        trigger = [r.trigger_ms for r in runs[mode] if r.trigger_ms is not None]
        spent = "/".join(f"{t:.0f}" for t in trigger) or "-"
        before, after = peaks[mode]
        print(
            f"   {mode:<6}{rate[mode]:>10,.0f}{best[mode]:>8.2f}  {each:<22}{events:>8}{rows:>12}{notes:>10}"
            f"{spent:>12}{f'{before:.0f} -> {after:.0f}':>14}"
        )
    median = {mode: statistics.median(r.seconds for r in runs[mode]) for mode in runs}
    print(
        f"   on/off {rate['on'] / rate['off']:.3f} (target >= 0.9); on/off of the medians "
        f"{median['off'] / median['on']:.3f}; events per import expected: {expected}"
    )
    trigger = [r.trigger_ms / 1000 / r.seconds for r in runs["on"] if r.trigger_ms is not None]
    if trigger:
        print(f"   time in the outbox trigger functions: {min(trigger):.1%}..{max(trigger):.1%} of an import's time")
    print(f"   a WebSocket subscriber received (bulk events, rows): {[r.followed for r in runs['on']]}")
    retries = sum(r.retries for mode in runs for r in runs[mode])
    if retries:
        print(f"   {retries} import(s) retried: the database server had no connection to spare (not timed)")
    print("   peak RSS = the worker's VmHWM before the first measured import -> after the last")


if __name__ == "__main__":
    main()
