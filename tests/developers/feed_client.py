"""The change feed as a client follows it: Server-Sent Events and WebSocket messages read in the background, so a
test can wait for the next one with a deadline, or check that none comes; and bounded waits on the feed's state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import websockets
from litestar import Litestar
from websockets.asyncio.client import ClientConnection

from service.accounts.auth import build_auth
from service.app import create_app
from service.core.database_urls import backend_of
from service.core.settings import Settings
from service.developers.events.feed import Feed
from tests import mariadb
from tests.client import TEST_SECRET, token
from tests.database import empty, fetch, queue_tables
from tests.polling import WAIT, until
from tests.server import served

# What the feed and the imports write (events, their horizon, jobs, uploads, the queue): emptied around each test of
# the feed that makes import jobs too, since the database is shared.
_RESET = ("developers", "developer_events", "developer_events_horizon", "import_jobs", "import_uploads")


_NEWEST_STAMPED = "SELECT seq, id FROM developer_events WHERE seq IS NOT NULL ORDER BY seq DESC, id DESC"


@contextlib.asynccontextmanager
async def emptied(database_url: str) -> AsyncIterator[None]:
    """No developers, events, import jobs or queue entries, before the block and after it."""
    await empty(database_url, *_RESET, *queue_tables(database_url))
    yield
    await empty(database_url, *_RESET, *queue_tables(database_url))


def cursor(event_id: str) -> tuple[int, int]:
    """An event's `id` as the pair it compares by."""
    xid, _, number = event_id.partition("-")
    return int(xid), int(number)


async def listening(feed: Feed) -> None:
    await until(lambda: feed.state == "listening", "the feed to listen")


async def subscribers(feed: Feed, count: int) -> None:
    await until(lambda: len(feed.subscriptions) == count, f"{count} subscription(s)")


async def new_subscription(feed: Feed, known: set[object]) -> None:
    """Wait for a subscription that is not among `known` (those there before a client connected)."""
    await until(lambda: bool(feed.subscriptions - known), "the feed to have the new subscription")


def bearer(role: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role)}"}  # type: ignore[arg-type]


def scopeless_token() -> str:
    """A token signed with the test key that grants nothing: no role issues one."""
    return build_auth(Settings(secret_key=TEST_SECRET)).create_token(identifier="0", token_extras={"scopes": []})


@dataclass
class Running:
    """An app served over a socket, its feed listening, and an admin's client for its API."""

    app: Litestar
    feed: Feed
    url: str
    api: httpx.AsyncClient
    database_url: str


@contextlib.asynccontextmanager
async def running(settings: Settings, **overrides: Any) -> AsyncIterator[Running]:
    """Serve an app built from `settings` with quick feed timings (and `overrides`) until the block ends."""
    tuned = {"events_keepalive_seconds": 5.0, "events_poll_seconds": 0.2} | overrides
    app = create_app(msgspec.structs.replace(settings, **tuned))
    feed: Feed = app.state.feed
    try:
        async with served(app) as url, httpx.AsyncClient(base_url=url, headers=bearer(), timeout=60) as api:
            await listening(feed)
            yield Running(app, feed, url, api, settings.database_url)
    finally:
        # The app's shutdown closes its pool too; this also covers a server that failed before shutting down.
        await feed.engine.dispose()


async def fetchrow(database_url: str, query: str) -> Any:
    rows = await fetch(database_url, query + " LIMIT 1")
    return rows[0] if rows else None


async def caught_up(run: Running) -> None:
    """Wait until the feed has fanned out every event committed so far, so a stream from now starts after them
    (on MariaDB: every event stamped so far)."""
    if backend_of(run.database_url) == "mariadb":
        rows = await mariadb.fetch(run.database_url, f"{_NEWEST_STAMPED} LIMIT 1")
        row = rows[0] if rows else None
    else:
        row = await fetchrow(
            run.database_url, "SELECT xid::text AS xid_text, id FROM developer_events ORDER BY xid DESC, id DESC"
        )
    newest = (0, 0) if row is None else (int(row[0]), row[1])
    await until(lambda: run.feed.cursor >= newest, "the feed to catch up with the outbox")


# Server-Sent Events


@dataclass
class Message:
    """One SSE message: its fields, and the comment lines that came with it (a keepalive is comments only)."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> dict[str, Any]:
        assert self.data is not None, self
        return dict(json.loads(self.data))


END = Message(event="(end of stream)")


class SSEStream:
    """An open event stream, read into a queue by a task of its own."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        message = Message()
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if message != Message():
                        self.queue.put_nowait(message)
                    message = Message()
                elif line.startswith(":"):
                    message.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "data":
                        message.data = value if message.data is None else f"{message.data}\n{value}"
                    elif name in ("id", "event"):
                        setattr(message, name, value)
        except httpx.HTTPError:
            pass
        finally:
            self.queue.put_nowait(END)

    async def message(self, within: float = WAIT, *, keepalives: bool = False) -> Message:
        """The next message (END once the stream has ended), keepalives skipped unless asked for: within `within`
        seconds in all, however many keepalives come meanwhile."""
        deadline = time.monotonic() + within
        while True:
            try:
                message = await asyncio.wait_for(self.queue.get(), max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                raise AssertionError("no message arrived in time") from None
            if keepalives or message.data is not None or message.event is not None:
                return message

    async def event(self, within: float = WAIT) -> dict[str, Any]:
        """The next change event (keepalives skipped), as JSON; its `id:` line is the JSON's `id`."""
        message = await self.message(within)
        assert message.event is None, message
        body = message.json
        assert message.id == body["id"], message
        return body

    async def events(self, count: int, within: float = WAIT) -> list[dict[str, Any]]:
        return [await self.event(within) for _ in range(count)]

    async def quiet(self, seconds: float) -> None:
        """No change event (nor end) arrives for `seconds`: keepalives only."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(self.queue.get(), left)
            except TimeoutError:
                return
            assert message.data is None, f"unexpected {message}"
            assert message.event is None, f"unexpected {message}"


@contextlib.asynccontextmanager
async def sse(
    run: Running,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    role: str | None = "admin",
) -> AsyncIterator[SSEStream]:
    """Follow the change feed as SSE until the block ends (then disconnect); yields once the feed has the
    subscription, so whatever is written next is on the stream. No token at all when `role` is None (a ticket)."""
    await caught_up(run)
    known = set(run.feed.subscriptions)
    token_headers = {} if role is None else bearer(role)
    async with (
        httpx.AsyncClient(base_url=run.url, headers=token_headers, timeout=httpx.Timeout(WAIT, read=None)) as client,
        client.stream("GET", "/api/developers/events", params=params, headers=headers) as response,
    ):
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = SSEStream(response)
        try:
            await new_subscription(run.feed, known)
            yield stream
        finally:
            stream.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stream.reader


# WebSocket


async def ticket(run: Running, headers: Mapping[str, str] | None = None) -> str:
    """A feed ticket for the caller of `headers` (the admin's token unless told)."""
    answer = await run.api.post("/api/developers/events/tickets", headers=headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["ticket"])


def ws_url(url: str, query: str = "") -> str:
    return url.replace("http://", "ws://", 1) + "/api/developers/events/ws" + (f"?{query}" if query else "")


@contextlib.asynccontextmanager
async def socket(
    run: Running,
    query: str = "",
    *,
    headers: Mapping[str, str] | None = None,
    subprotocols: list[str] | None = None,
    origin: str | None = None,
) -> AsyncIterator[ClientConnection]:
    """A WebSocket to `url`'s change feed: the admin token in the header unless `headers` or `subprotocols` say
    otherwise; an `Origin` header, as a browser sends, when `origin` is given."""
    if headers is None and subprotocols is None:
        headers = bearer()
    async with websockets.connect(
        ws_url(run.url, query),
        additional_headers=dict(headers or {}),
        subprotocols=subprotocols,  # type: ignore[arg-type]
        origin=origin,  # type: ignore[arg-type]
        open_timeout=WAIT,
        close_timeout=2,
    ) as ws:
        yield ws


@contextlib.asynccontextmanager
async def subscribed_socket(run: Running, query: str = "", **options: Any) -> AsyncIterator[ClientConnection]:
    """`socket`, yielded once the feed has its subscription."""
    await caught_up(run)
    known = set(run.feed.subscriptions)
    async with socket(run, query, **options) as ws:
        await new_subscription(run.feed, known)
        yield ws


async def close_code(run: Running, query: str) -> int | None:
    """The code the server closes a WebSocket with, once accepted, when asked for `query`."""
    async with socket(run, query) as ws:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await receive(ws)
    return ws.close_code


async def refused(
    run: Running, params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """The answer to a request for the SSE stream that is expected to be refused, its body read (a stream that
    starts instead is closed at once, so the test fails on the status, without waiting)."""
    async with run.api.stream("GET", "/api/developers/events", params=params, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
    return response


async def receive(ws: ClientConnection, within: float = WAIT) -> dict[str, Any]:
    """The next message as JSON, whatever its op."""
    try:
        text = await asyncio.wait_for(ws.recv(decode=True), within)
    except TimeoutError:
        raise AssertionError("no message arrived in time") from None
    return dict(json.loads(text))


async def ws_event(ws: ClientConnection, within: float = WAIT) -> dict[str, Any]:
    """The next change event, pings skipped."""
    while (message := await receive(ws, within))["op"] == "ping":
        pass
    return message
