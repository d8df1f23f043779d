"""The change feed from a real browser page: a ticket got with fetch, an EventSource that follows the feed with it
and resumes with a new one after it expires, and pages of other origins, allowed (CORS_ALLOW_ORIGINS) or not."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route

from service.core.settings import Settings
from tests import database
from tests.browser import chromium, watched_context
from tests.client import token
from tests.developers.api import create_as_event
from tests.developers.feed_client import Running, running, subscribers
from tests.polling import WAIT, until

WAIT_MS = WAIT * 1000
# The page a client would write: a ticket for its bearer token, then an EventSource with it, resuming `after` the
# last event it was given.
FOLLOWER = """<!doctype html><meta charset="utf-8"><title>feed</title><script>
window.seen = [];
window.after = null;
window.follow = async (api, token, after) => {
  const answer = await fetch(api + '/api/developers/events/tickets',
                             {method: 'POST', headers: {Authorization: 'Bearer ' + token}});
  const {ticket} = await answer.json();
  window.url = api + '/api/developers/events?ticket=' + encodeURIComponent(ticket)
    + (after ? '&after=' + encodeURIComponent(after) : '');
  window.source = new EventSource(window.url);
  window.source.onmessage = (event) => {
    window.after = event.lastEventId;
    window.seen.push({id: event.lastEventId, ...JSON.parse(event.data)});
  };
  // Refused (its ticket expired before it connected, on a busy machine): a new ticket, from the last event seen.
  window.source.onerror = () => {
    if (window.source.readyState === EventSource.CLOSED) window.follow(api, token, window.after);
  };
};
window.opens = (url) => new Promise((resolve) => {  // 'open', or 'closed' if refused
  const socket = new WebSocket(url);
  socket.onopen = () => { resolve('open'); socket.close(); };
  socket.onclose = () => resolve('closed');
});
</script>"""
# An EventSource the service refuses gives up: its readyState is then 2 (CLOSED).
REFUSED = "new Promise((done) => { const s = new EventSource(window.url); s.onerror = () => done(s.readyState); })"
# Reading a fetch's answer from another origin: its status, a header CORS exposes and one it does not.
TICKET_FROM_ELSEWHERE = """async ([api, token]) => {
  try {
    const answer = await fetch(api + '/api/developers/events/tickets',
                               {method: 'POST', headers: {Authorization: 'Bearer ' + token, 'X-Request-ID': 'page-1'}});
    const body = await answer.json();
    return {status: answer.status, id: answer.headers.get('X-Request-ID'),
            policy: answer.headers.get('Content-Security-Policy'), ticket: body.ticket};
  } catch (error) {
    return {blocked: String(error)};
  }
}"""


@pytest.fixture(autouse=True)
async def empty(database_url: str) -> None:
    await database.empty(database_url, "developers", "developer_events", "developer_events_horizon")


async def page_at(context: BrowserContext, origin: str, service: str) -> Page:
    """The follower's page at `origin`/feed. At the service's own origin the browser gives it itself (the
    service's answers forbid scripts), and lets the rest through to the service; another origin is `others`'."""

    async def fulfil(route: Route) -> None:
        if route.request.url == f"{service}/feed":
            await route.fulfill(status=200, content_type="text/html; charset=utf-8", body=FOLLOWER)
        else:
            await route.fallback()  # to the watch, which lets it through to the service

    async def through(route: Route) -> None:
        await route.continue_()  # a page server of the test's own: not a request that leaves the machine

    await context.route(f"{origin}/**", fulfil if origin == service else through)  # ahead of the watch's
    page = await context.new_page()
    await page.goto(f"{origin}/feed")
    return page


@contextlib.asynccontextmanager
async def others() -> AsyncIterator[int]:
    """A server of pages on loopback, as the service is (a browser lets a page of the public internet reach a
    loopback address only with the user's leave): the follower at /feed, on the port this yields. Reached as
    127.0.0.1 and as localhost, it is two origins."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            path = (await reader.readuntil(b"\r\n\r\n")).split(b" ", 2)[1]
            body, status = (FOLLOWER.encode(), b"200 OK") if path == b"/feed" else (b"", b"404 Not Found")
            head = f"Content-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\nConnection: close"
            writer.write(b"HTTP/1.1 " + status + b"\r\n" + head.encode() + b"\r\n\r\n" + body)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield int(server.sockets[0].getsockname()[1])


async def seen(page: Page, count: int) -> list[dict[str, Any]]:
    await page.wait_for_function(f"window.seen.length >= {count}", timeout=WAIT_MS)
    return list(await page.evaluate("window.seen"))


@pytest.fixture
async def run(settings: Settings) -> AsyncIterator[Running]:
    async with running(settings, events_ticket_seconds=1) as served_app:
        yield served_app


async def test_a_page_follows_the_feed_with_a_ticket_and_resumes_with_a_new_one(run: Running) -> None:
    bearer = token("viewer")
    async with chromium() as browser, watched_context(browser, run.url) as (context, watched):
        page = await page_at(context, run.url, run.url)
        await page.evaluate("([api, token]) => window.follow(api, token)", [run.url, bearer])
        issued = time.time()
        await subscribers(run.feed, 1)
        ada = await create_as_event(run.api, name="Ada", email="ada@x.io", specialty="x")
        (first,) = await seen(page, 1)
        assert (first["op"], first["developer"]) == ("created", ada)
        # The connection ends; meanwhile the ticket expires and more is written.
        await page.evaluate("window.source.close()")
        await subscribers(run.feed, 0)
        await until(lambda: time.time() > issued + 2, "the ticket to expire")  # EVENTS_TICKET_SECONDS=1
        missed = [await create_as_event(run.api, name=n, email=f"{n}@x.io", specialty="x") for n in ("Bea", "Cy")]
        # The old URL no longer opens the feed (an EventSource refused gives up: readyState 2, CLOSED) ...
        refused = (
            "new Promise((done) => { const s = new EventSource(window.url); s.onerror = () => done(s.readyState); })"
        )
        assert await page.evaluate(refused) == 2
        # ... a new ticket, `after` the last event seen, brings what was missed, then what comes next.
        await page.evaluate("([api, token, after]) => window.follow(api, token, after)", [run.url, bearer, first["id"]])
        after = await create_as_event(run.api, name="Di", email="di@x.io", specialty="x")
        events = await seen(page, 4)
        assert [e["developer"] for e in events] == [ada, *missed, after]
        assert len({e["id"] for e in events}) == 4
        assert all(f"{run.url}/api/developers/events" in fault and "401" in fault for fault in watched.faults), (
            watched.faults  # the refused EventSource's 401, and nothing else
        )


async def test_pages_of_an_allowed_origin_may_use_the_api_and_the_websocket_others_may_not(
    settings: Settings,
) -> None:
    async with others() as port:
        allowed, refused = f"http://127.0.0.1:{port}", f"http://localhost:{port}"
        async with running(settings, cors_allow_origins=allowed) as run, chromium() as browser:
            await allowed_and_refused(run, browser, allowed, refused)


async def allowed_and_refused(run: Running, browser: Browser, allowed: str, refused: str) -> None:
    bearer, ws = token("viewer"), run.url.replace("http://", "ws://", 1) + "/api/developers/events/ws?ticket="
    async with watched_context(browser, run.url) as (context, watched):
        page = await page_at(context, allowed, run.url)
        answer = await page.evaluate(TICKET_FROM_ELSEWHERE, [run.url, bearer])
        # A bearer token needs a preflight, which passed; X-Request-ID is exposed, the policy header is not.
        assert (answer.get("status"), answer.get("id"), answer.get("policy")) == (200, "page-1", None), answer
        assert await page.evaluate("(url) => window.opens(url)", ws + answer["ticket"]) == "open"
        await page.evaluate("([api, token]) => window.follow(api, token)", [run.url, bearer])
        await subscribers(run.feed, 1)
        made = await create_as_event(run.api, name="Ada", email="ada@x.io", specialty="x")
        assert (await seen(page, 1))[0]["developer"] == made
        assert watched.faults == []
    async with watched_context(browser, run.url) as (context, watched):
        page = await page_at(context, refused, run.url)
        answer = await page.evaluate(TICKET_FROM_ELSEWHERE, [run.url, bearer])
        assert "blocked" in answer, answer
        ticket = (await run.api.post("/api/developers/events/tickets")).json()["ticket"]
        assert await page.evaluate("(url) => window.opens(url)", ws + ticket) == "closed"
        assert watched.faults, "the browser reported neither the blocked fetch nor the refused WebSocket"
        assert all("CORS" in fault or "WebSocket" in fault or "ERR_FAILED" in fault for fault in watched.faults), (
            watched.faults
        )
