"""The change feed on MariaDB: what polling costs when nothing happens, and how long an event takes to arrive.

    uv run python -m tests.bench.feed_mariadb [--idle-seconds 10] [--events 200]

On a private MariaDB server (tests/mariadb_server.py), so that nothing else runs on it:
- one idle round (the one round trip that asks for the last stamp and for unstamped events), timed 2,000 times on
  a connection of its own;
- an app served in this process, idle, for --idle-seconds, with one SSE subscriber (the feed polls every
  LIVE_POLL_SECONDS) and with none (every EVENTS_POLL_SECONDS): the server's statements and CPU seconds, and this
  process's CPU seconds, per second;
- --events single-row INSERTs from another connection (as another process writes), then as many POSTs through the
  app itself, spaced 0-100 ms at random: the time from each write's answer to the event's arrival on the SSE
  stream (a POST's answer may come after its event: then the figure is 0 or less).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from service.app import create_app
from service.core.settings import Settings
from service.developers.events import mariadb_store
from service.developers.events.mariadb import LIVE_POLL_SECONDS
from tests import mariadb
from tests.client import TEST_SECRET, token
from tests.mariadb_server import PrivateServer, private_server
from tests.server import served


def _server_cpu(server: PrivateServer) -> float:
    assert server.process is not None
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _questions(url: str) -> int:
    return int((await mariadb.fetch(url, "SHOW GLOBAL STATUS LIKE 'Questions'"))[0][1])


async def idle_round(url: str, rounds: int = 2000) -> None:
    conn = await mariadb.connect(url)
    try:
        timings = []
        for _ in range(rounds):
            started = time.perf_counter()
            await mariadb_store.state(conn)
            timings.append(time.perf_counter() - started)
    finally:
        conn.close()
    timings.sort()
    print(
        f"idle round (1 round trip), {rounds} times: median {statistics.median(timings) * 1e6:.0f} us, "
        f"p99 {timings[int(rounds * 0.99)] * 1e6:.0f} us"
    )


async def idle_app(server: PrivateServer, url: str, seconds: float, subscribed: bool) -> None:
    app = create_app(Settings(database_url=url, secret_key=TEST_SECRET))
    async with served(app) as base:
        headers = {"Authorization": f"Bearer {token('viewer')}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=httpx.Timeout(10, read=None)) as client:
            stream = client.stream("GET", "/api/developers/events") if subscribed else None
            response = await stream.__aenter__() if stream is not None else None
            await asyncio.sleep(1.0)
            questions, cpu, own = await _questions(url), _server_cpu(server), time.process_time()
            await asyncio.sleep(seconds)
            questions = await _questions(url) - questions - 1
            cpu, own = _server_cpu(server) - cpu, time.process_time() - own
            if stream is not None and response is not None:
                await stream.__aexit__(None, None, None)
    what = f"1 subscriber (every {LIVE_POLL_SECONDS} s)" if subscribed else "no subscriber (every 1 s)"
    print(
        f"idle app, {what}: {questions / seconds:.1f} statements/s, server CPU {cpu / seconds * 100:.2f} %, "
        f"this process's CPU {own / seconds * 100:.2f} % (granian, the feed, the idle client)"
    )
    await app.state.feed.engine.dispose()


async def latency(url: str, events: int, *, through_api: bool) -> None:
    """From each write's answer to its event's arrival: writes from another connection (as another process's),
    or POSTs through the app itself (its feed is woken by its own commits)."""
    app = create_app(Settings(database_url=url, secret_key=TEST_SECRET))
    committed: dict[str, float] = {}
    arrived: dict[str, float] = {}
    tag = "api" if through_api else "sql"
    async with served(app) as base:
        headers = {"Authorization": f"Bearer {token('admin')}"}
        async with (
            httpx.AsyncClient(base_url=base, headers=headers, timeout=httpx.Timeout(10, read=None)) as client,
            client.stream("GET", "/api/developers/events") as response,
        ):

            async def read() -> None:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        email = json.loads(line[5:])["developer"]["email"]
                        arrived[email] = time.perf_counter()
                        if len(arrived) == events:
                            return

            reader = asyncio.create_task(read())
            await asyncio.sleep(1.0)
            conn = await mariadb.connect(url)
            try:
                for i in range(events):
                    await asyncio.sleep(random.uniform(0, 0.1))
                    email = f"{tag}{i}@bench.io"
                    if through_api:
                        body = {"name": "L", "email": email, "specialty": "bench"}
                        assert (await client.post("/api/developers", json=body)).status_code == 201
                    else:
                        async with conn.cursor() as cursor:
                            await cursor.execute(
                                "INSERT INTO developers (name, email, specialty) VALUES (%s, %s, 'bench')", ("L", email)
                            )
                    committed[email] = time.perf_counter()  # the answer comes once COMMIT has
            finally:
                conn.close()
            await asyncio.wait_for(reader, 60)
    await app.state.feed.engine.dispose()
    lags = sorted((arrived[e] - committed[e]) * 1000 for e in committed)
    what = "POSTs through the app" if through_api else "INSERTs from another connection"
    print(
        f"delivery, {events} {what}: median {statistics.median(lags):.1f} ms, "
        f"p90 {lags[int(len(lags) * 0.9)]:.1f} ms, p99 {lags[int(len(lags) * 0.99)]:.1f} ms, max {lags[-1]:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as directory,
        private_server(Path(directory)) as server,
        mariadb.fresh_database(server.url) as url,
    ):
        asyncio.run(idle_round(url))
        asyncio.run(idle_app(server, url, args.idle_seconds, subscribed=True))
        asyncio.run(idle_app(server, url, args.idle_seconds, subscribed=False))
        asyncio.run(latency(url, args.events, through_api=False))
        asyncio.run(latency(url, args.events, through_api=True))


if __name__ == "__main__":
    main()
