"""Feed tickets: a bearer token traded for a short-lived credential that opens the change feed (SSE and WebSocket)
as `?ticket=`, and nothing else; it never shows in a log line or a span."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import msgspec
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from websockets.exceptions import InvalidStatus

from service.accounts.tickets import AUDIENCE, FeedTickets, ticket_key
from service.app import create_app
from service.core.settings import Settings, SettingsError
from tests.client import TEST_SECRET, assert_problem, token
from tests.developers.api import create, create_as_event, people
from tests.developers.feed_client import (
    Running,
    bearer,
    emptied,
    listening,
    running,
    socket,
    sse,
    subscribed_socket,
    ticket,
    ws_event,
)
from tests.imports.api import as_user, submitted
from tests.polling import until
from tests.server import served
from tests.system.log_lines import captured

ADA = {"name": "Ada Lovelace", "email": "ada@example.com", "specialty": "mathematics"}
OTHER_KEY = "another-signing-key-of-forty-characters!"
EVENTS = "/api/developers/events"


@pytest.fixture(autouse=True)
async def empty(database_url: str) -> AsyncIterator[None]:
    async with emptied(database_url):
        yield


@pytest.fixture
async def run(settings: Settings) -> AsyncIterator[Running]:
    async with running(settings) as served_app:
        yield served_app


def expired_ticket(secret: str = TEST_SECRET) -> str:
    """A ticket as the service signs one, for the admin, that expired a minute ago."""
    past = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp())
    claims = {"sub": "0", "exp": past, "iat": past - 30, "aud": AUDIENCE, "scopes": ["developers:read"]}
    return jwt.encode(claims, ticket_key(secret), algorithm="HS256")


async def anonymous_get(run: Running, path: str, params: dict[str, str], **headers: str) -> httpx.Response:
    """A GET without the admin's token; a stream that starts is closed at once (the test then fails on its status)."""
    async with (
        httpx.AsyncClient(base_url=run.url, timeout=30) as client,
        client.stream("GET", path, params=params, headers=headers) as response,
    ):
        if response.status_code != 200:
            await response.aread()
    return response


async def test_a_ticket_is_issued_for_a_bearer_token_and_never_cached(run: Running) -> None:
    answer = await run.api.post("/api/developers/events/tickets")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["expires_in"] == 30
    assert set(body) == {"ticket", "expires_in"}
    async with httpx.AsyncClient(base_url=run.url) as client:
        assert_problem(await client.post("/api/developers/events/tickets"), 401)


async def test_a_ticket_opens_the_sse_feed_without_a_token(run: Running) -> None:
    async with sse(run, {"ticket": await ticket(run, bearer("viewer"))}, role=None) as stream:
        made = await create_as_event(run.api, **ADA)
        assert (await stream.event())["developer"] == made


async def test_a_ticket_opens_the_websocket_without_a_token(run: Running) -> None:
    async with subscribed_socket(run, f"ticket={await ticket(run)}", headers={}) as ws:
        assert ws.subprotocol is None
        made = await create_as_event(run.api, **ADA)
        assert (await ws_event(ws))["developer"] == made


async def test_a_ticket_shows_what_its_account_may_see(run: Running) -> None:
    bob = await ticket(run, as_user("editor", 8))
    async with sse(run, {"ticket": bob}, role=None) as stream:
        assert await submitted(run.api, "json", people(1), headers=as_user("editor", 7)) == 1  # another's job
        assert await submitted(run.api, "json", people(1, 1), headers=as_user("editor", 8)) == 2  # Bob's own
        await create_as_event(run.api, **ADA)
        shown = [await stream.event() for _ in range(2)]
        assert [(e["op"], e.get("job", {}).get("id")) for e in shown] == [("import.queued", 2), ("created", None)]


@pytest.mark.parametrize(
    "credential",
    [expired_ticket(), expired_ticket(OTHER_KEY), FeedTickets(OTHER_KEY).issue(0, frozenset({"developers:read"}))],
    ids=["expired", "expired-foreign", "foreign"],
)
async def test_a_bad_ticket_is_a_401_on_sse_and_refused_at_the_websocket_handshake(
    run: Running, credential: str
) -> None:
    problem = assert_problem(await anonymous_get(run, EVENTS, {"ticket": credential}), 401)
    assert credential not in str(problem)
    with pytest.raises(InvalidStatus) as refusal:
        async with socket(run, f"ticket={credential}", headers={}):
            pass
    assert refusal.value.response.status_code == 403
    assert not run.feed.subscriptions


async def test_tickets_and_bearer_tokens_are_not_interchangeable(run: Running) -> None:
    a_ticket = await ticket(run)
    # A ticket is no bearer token, on any route, the tickets route (a ticket for a ticket) and the feed's included.
    for method, path in [("GET", "/api/developers"), ("POST", "/api/developers/events/tickets"), ("GET", EVENTS)]:
        async with httpx.AsyncClient(base_url=run.url, headers={"Authorization": f"Bearer {a_ticket}"}) as client:
            answer = assert_problem(await client.request(method, path), 401)
            assert answer["detail"]
    with pytest.raises(InvalidStatus) as refusal:
        async with socket(run, subprotocols=["bearer", a_ticket]):
            pass
    assert refusal.value.response.status_code == 403
    # Nor opens anything but the feed as `?ticket=`.
    for method, path in [("GET", "/api/developers"), ("POST", "/api/developers/events/tickets")]:
        async with httpx.AsyncClient(base_url=run.url) as client:
            assert_problem(await client.request(method, path, params={"ticket": a_ticket}), 401)
    # And a bearer token is no ticket.
    answer = await anonymous_get(run, EVENTS, {"ticket": token("admin")})
    assert_problem(answer, 401)
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_a_ticket_beside_a_token_is_a_401(run: Running) -> None:
    a_ticket = await ticket(run)
    both = await anonymous_get(run, EVENTS, {"ticket": a_ticket}, Authorization=f"Bearer {token('admin')}")
    assert "not both" in assert_problem(both, 401)["detail"]
    assert both.headers["www-authenticate"] == "Bearer"
    with pytest.raises(InvalidStatus) as refusal:
        async with socket(run, f"ticket={a_ticket}", subprotocols=["bearer", token("admin")]):
            pass
    assert refusal.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        async with socket(run, f"ticket={a_ticket}", headers=bearer()):
            pass


async def test_a_stream_outlives_its_ticket(settings: Settings) -> None:
    async with running(settings, events_ticket_seconds=1) as run, contextlib.AsyncExitStack() as stack:
        # A ticket of one second may expire before its stream starts on a busy machine: then take another.
        while True:
            answer = (await run.api.post("/api/developers/events/tickets")).json()
            assert answer["expires_in"] == 1
            expires = time.time() + answer["expires_in"]
            with contextlib.suppress(AssertionError):  # `sse` asserts a 200
                stream = await stack.enter_async_context(sse(run, {"ticket": answer["ticket"]}, role=None))
                break
        await until(lambda: time.time() > expires + 1, "the ticket to expire")
        assert_problem(await anonymous_get(run, EVENTS, {"ticket": answer["ticket"]}), 401)
        made = await create_as_event(run.api, **ADA)
        assert (await stream.event())["developer"] == made


@pytest.mark.parametrize("seconds", [0, 301])
def test_the_ticket_lifetime_is_bounded(seconds: int) -> None:
    with pytest.raises(SettingsError, match="events_ticket_seconds"):
        Settings.from_env({"EVENTS_TICKET_SECONDS": str(seconds)})


async def test_a_ticket_never_shows_in_a_log_line_or_a_span(settings: Settings) -> None:
    exporter = InMemorySpanExporter()
    traced = msgspec.structs.replace(
        settings, otel_exporter_otlp_endpoint="http://127.0.0.1:9", events_poll_seconds=0.2, log_format="json"
    )
    app = create_app(traced, span_processor=SimpleSpanProcessor(exporter))
    try:
        with captured() as lines:
            async with served(app) as url, httpx.AsyncClient(base_url=url, headers=bearer(), timeout=60) as api:
                await listening(app.state.feed)
                run = Running(app, app.state.feed, url, api, settings.database_url)
                good = await ticket(run)
                async with sse(run, {"ticket": good, "specialty": "mathematics"}, role=None) as stream:
                    await create(api, **ADA)
                    await stream.event()
                async with subscribed_socket(run, f"ticket={good}", headers={}) as ws:
                    await create(api, name="Grace", email="grace@example.com", specialty="mathematics")
                    await ws_event(ws)
                tickets = [good, expired_ticket(), f"{good}x"]
                for bad in tickets[1:]:
                    assert_problem(await anonymous_get(run, EVENTS, {"ticket": bad}), 401)
                    with contextlib.suppress(InvalidStatus):
                        async with socket(run, f"ticket={bad}", headers={}):
                            pass
                await until(lambda: any(EVENTS in s.name for s in exporter.get_finished_spans()), "the spans")
        # Every line but the test's own HTTP client's (httpx logs each URL it requests).
        logged = "\n".join(json.dumps(line) for line in lines.all() if not line["logger"].startswith("httpx"))
        assert EVENTS in logged  # the request lines are there, each naming its route
        spans = exporter.get_finished_spans()
        urls = [str(s.attributes.get("http.url", "")) for s in spans if s.attributes]
        assert any("ticket=REDACTED" in url for url in urls), urls  # the attribute the redaction is for is there
        for secret in tickets:
            assert secret not in logged
            for span in spans:
                assert secret not in span.name
                assert all(secret not in str(value) for value in (span.attributes or {}).values()), span.attributes
                for event in span.events:
                    assert all(secret not in str(value) for value in (event.attributes or {}).values())
    finally:
        await app.state.feed.engine.dispose()
