"""CORS by setting: none at all when CORS_ALLOW_ORIGINS is empty; with origins named, Litestar's CORS for them,
preflights answered before authentication (never 401), the security headers and request ids kept, and the
setting checked at start-up."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from litestar import Litestar

from service.app import create_app
from service.core.settings import Settings, SettingsError
from tests.client import serve

SPA = "https://spa.example"
PREFLIGHT = {
    "Origin": SPA,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, x-request-id",
}


@pytest.fixture
async def cors_app(settings: Settings) -> AsyncIterator[Litestar]:
    app = create_app(msgspec.structs.replace(settings, cors_allow_origins=f" {SPA}, http://localhost:5173 "))
    yield app
    await app.state.feed.engine.dispose()


async def test_without_the_setting_there_is_no_cors(client: httpx.AsyncClient) -> None:
    answer = await client.options("/api/developers", headers=PREFLIGHT)
    assert answer.status_code == 204  # the service's own OPTIONS answer, which needs no token
    assert not [name for name in answer.headers if name.startswith("access-control-")]
    answer = await client.get("/api/developers", headers={"Origin": SPA})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


async def test_a_preflight_from_an_allowed_origin_is_answered_without_a_token(cors_app: Litestar) -> None:
    async with serve(cors_app, bearer=None) as anonymous:
        for path in ["/api/developers", "/api/developers/events/tickets", "/api/developers/1", "/api/users"]:
            answer = await anonymous.options(path, headers=PREFLIGHT)
            assert answer.status_code == 204, (path, answer.text)
            assert answer.headers["access-control-allow-origin"] == SPA
            assert "access-control-allow-credentials" not in answer.headers
            allowed = answer.headers["access-control-allow-headers"].lower()
            for header in ["authorization", "content-type", "last-event-id", "if-match", "x-request-id"]:
                assert header in allowed
            assert {"GET", "POST", "PATCH", "DELETE"} <= set(answer.headers["access-control-allow-methods"].split(", "))
            assert answer.headers["x-content-type-options"] == "nosniff"  # the security headers still come
            assert answer.headers["x-request-id"]


async def test_a_preflight_from_another_origin_is_refused(cors_app: Litestar) -> None:
    async with serve(cors_app, bearer=None) as anonymous:
        answer = await anonymous.options("/api/developers", headers=PREFLIGHT | {"Origin": "https://evil.example"})
        assert answer.status_code == 400
        assert "access-control-allow-origin" not in answer.headers
        sub = PREFLIGHT | {"Origin": "https://app.spa.example"}  # no wildcard, no suffix match
        assert "access-control-allow-origin" not in (await anonymous.options("/api/developers", headers=sub)).headers


async def test_answers_to_an_allowed_origin_expose_their_headers(cors_app: Litestar) -> None:
    async with serve(cors_app) as client:
        answer = await client.get("/api/developers", headers={"Origin": SPA})
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == SPA
        assert answer.headers["vary"] == "Origin"
        exposed = set(answer.headers["access-control-expose-headers"].split(", "))
        assert exposed == {"Location", "Retry-After", "X-Request-ID", "ETag"}
        assert answer.headers["cache-control"] == "private, no-cache"  # a validated read (service.web.conditional)
        assert answer.headers["etag"]
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        refused = await client.get("/api/developers", headers={"Origin": "https://evil.example"})
        assert refused.status_code == 200  # answered, but without the header that lets the page read it
        assert "access-control-allow-origin" not in refused.headers
        anonymous = await client.get("/api/developers", headers={"Origin": SPA, "Authorization": ""})
        assert anonymous.status_code == 401
        assert anonymous.headers["access-control-allow-origin"] == SPA  # so the page can read its 401


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "https://*.example",
        "https://spa.example/",
        "https://spa.example/app",
        "spa.example",
        "ftp://spa.example",
        "https://user@spa.example",
        "https://spa.example?x=1",
        "null",
    ],
)
def test_an_entry_that_is_not_an_origin_stops_the_start(settings: Settings, value: str) -> None:
    with pytest.raises(SettingsError, match="CORS_ALLOW_ORIGINS"):
        create_app(msgspec.structs.replace(settings, cors_allow_origins=f"https://ok.example,{value}"))


def test_origins_are_read_in_their_serialized_form() -> None:
    named = "HTTPS://Spa.Example:443, http://localhost:8080,,http://localhost:80"
    assert Settings(cors_allow_origins=named).allowed_origins == (SPA, "http://localhost:8080", "http://localhost")
