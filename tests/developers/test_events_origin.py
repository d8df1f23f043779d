"""The change feed's WebSocket and the page that opens it: a handshake whose `Origin` is neither the service's own
nor in CORS_ALLOW_ORIGINS is refused before it is accepted (403); one without `Origin` (no browser) is not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from websockets.exceptions import InvalidStatus

from service.core.settings import Settings
from service.web.cors import origin_allowed
from tests import database
from tests.developers.api import create_as_event
from tests.developers.feed_client import Running, running, socket, subscribed_socket, ticket, ws_event

SPA = "http://spa.example:8080"


@pytest.fixture(autouse=True)
async def empty(database_url: str) -> None:
    await database.empty(database_url, "developers", "developer_events", "developer_events_horizon")


@pytest.fixture
async def run(settings: Settings) -> AsyncIterator[Running]:
    async with running(settings, cors_allow_origins=SPA) as served_app:
        yield served_app


def own_origin(run: Running) -> str:
    return run.url  # http://127.0.0.1:<port>, as a page the service served would send it


async def test_the_service_s_own_pages_an_allowed_origin_and_non_browsers_connect(run: Running) -> None:
    for origin in [own_origin(run), SPA, None]:
        async with subscribed_socket(run, f"ticket={await ticket(run)}", headers={}, origin=origin) as ws:
            made = await create_as_event(run.api, name=f"Dev {origin}", email=f"{len(str(origin))}@x.io", specialty="x")
            assert (await ws_event(ws))["developer"] == made


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "https://spa.example:8080", "http://spa.example", "null", "http://127.0.0.1"],
)
async def test_a_page_of_another_origin_is_refused_at_the_handshake(run: Running, origin: str) -> None:
    for how in [{"headers": {}, "query": f"ticket={await ticket(run)}"}, {"query": ""}]:  # a ticket, or a token
        with pytest.raises(InvalidStatus) as refusal:
            async with socket(run, str(how.pop("query")), origin=origin, **how):  # type: ignore[arg-type]
                pass
        assert refusal.value.response.status_code == 403
    assert not run.feed.subscriptions


async def test_without_cors_only_the_service_s_own_pages_connect(settings: Settings) -> None:
    async with running(settings) as run:
        async with subscribed_socket(run, origin=own_origin(run)):
            pass
        with pytest.raises(InvalidStatus):
            async with socket(run, origin=SPA):
                pass


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("https://api.example", "api.example", True),  # TLS ended at a proxy: the scheme is not compared
        ("http://api.example", "api.example:80", True),
        ("https://api.example", "API.example:443", True),
        ("https://api.example:8443", "api.example:8443", True),
        ("https://api.example", "api.example:8443", False),
        ("https://api.example.evil", "api.example", False),
        ("null", "api.example", False),
        ("https://api.example", "", False),
    ],
)
def test_the_service_s_own_origin_is_the_host_it_is_reached_at(origin: str, host: str, allowed: bool) -> None:
    assert origin_allowed(origin, host, ()) is allowed
