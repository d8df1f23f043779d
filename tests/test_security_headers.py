"""Every answer carries the security headers: successes, problems, and the router's and auth middleware's errors."""

from __future__ import annotations

import re

import httpx
import msgspec
import pytest
from litestar import Litestar

from service.app import create_app
from service.core.settings import Settings
from service.web.docs_pages import SWAGGER_UI
from tests.accounts.api import account, sign_in
from tests.client import serve

STRICT_CSP = "default-src 'none'; frame-ancestors 'none'"


def assert_secured(response: httpx.Response, *, csp: str = STRICT_CSP) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff", response.url
    assert headers["referrer-policy"] == "no-referrer", response.url
    assert headers["x-frame-options"] == "DENY", response.url
    assert headers.get_list("content-security-policy") == [csp], response.url


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/api/users/me", None, 404),  # a read without a validator (no account behind the test's token)
        ("POST", "/api/developers", {"name": ""}, 400),  # a problem answer
        ("GET", "/api/developers/999", None, 404),  # a problem from the service
        ("GET", "/api/nowhere", None, 404),  # no route: the router's 404
        ("PUT", "/api/developers", {}, 405),  # the router's 405
    ],
)
async def test_api_answers_are_secured_and_never_stored(
    client: httpx.AsyncClient, method: str, path: str, body: object, status: int
) -> None:
    response = await client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert_secured(response)
    assert response.headers.get_list("cache-control") == ["no-store"]


async def test_validated_reads_may_be_kept_by_the_client_alone_and_are_revalidated(client: httpx.AsyncClient) -> None:
    # The two reads with an ETag: a browser keeps them and asks with If-None-Match; no shared cache keeps them.
    created = await client.post("/api/developers", json={"name": "Ada", "email": "ada@x.io", "specialty": "math"})
    assert created.headers.get_list("cache-control") == ["no-store"]  # a write's answer is never kept
    for path in ("/api/developers", f"/api/developers/{created.json()['id']}"):
        read = await client.get(path)
        assert read.status_code == 200
        assert_secured(read)
        assert read.headers.get_list("cache-control") == ["private, no-cache"], path
        again = await client.get(path, headers={"If-None-Match": read.headers["etag"]})
        assert again.status_code == 304
        assert again.headers.get_list("cache-control") == ["private, no-cache"], path
        assert again.headers["etag"] == read.headers["etag"]


async def test_unauthenticated_answers_are_secured(app: Litestar) -> None:
    async with serve(app, bearer=None) as client:
        response = await client.get("/api/developers")  # the auth middleware's 401
        assert response.status_code == 401
        assert_secured(response)
        assert response.headers["cache-control"] == "no-store"
        for path in ("/health", "/nowhere"):
            assert_secured(await client.get(path))


async def test_an_unobserved_app_secures_its_answers_too(settings: Settings) -> None:
    # The request id and the status are added by the same hook as the security headers: with neither request logs
    # nor metrics, the headers are still there, and no id.
    app = create_app(msgspec.structs.replace(settings, metrics_enabled=False, log_requests=False))
    async with serve(app) as client:
        for path, status in (("/api/developers", 200), ("/api/nowhere", 404), ("/health", 200)):
            response = await client.get(path)
            assert response.status_code == status, path
            assert_secured(response)
            assert "x-request-id" not in response.headers


async def test_the_token_route_keeps_one_cache_control(client: httpx.AsyncClient) -> None:
    await account(client, "viewer@x.io", "viewer")
    response = await sign_in(client, "viewer@x.io")
    assert response.status_code == 200
    assert_secured(response)
    assert response.headers.get_list("cache-control") == ["no-store"]


def directives(csp: str) -> dict[str, list[str]]:
    named = (part.split() for part in csp.split(";"))
    return {words[0]: words[1:] for words in named if words}


@pytest.mark.parametrize(
    ("path", "style_src"),
    [
        ("/schema", ["'self'"]),
        ("/schema/swagger", ["'self'"]),
        ("/schema/scalar", ["'self'", "'unsafe-inline'"]),  # Scalar writes its styles (security_headers.py)
        ("/schema/openapi.json", ["'self'"]),
        (f"/schema/assets/{SWAGGER_UI}/swagger-ui-bundle.js", ["'self'"]),
    ],
)
async def test_the_api_document_pages_load_only_from_the_service(
    client: httpx.AsyncClient, path: str, style_src: list[str]
) -> None:
    response = await client.get(path)
    assert response.status_code == 200, path
    csp = response.headers["content-security-policy"]
    assert_secured(response, csp=csp)
    assert directives(csp) == {
        "default-src": ["'none'"],
        "script-src": ["'self'"],  # no inline script, no other origin
        "style-src": style_src,
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
        "frame-ancestors": ["'none'"],
    }


async def test_the_api_document_pages_run_no_inline_script(client: httpx.AsyncClient) -> None:
    for path in ("/schema", "/schema/swagger", "/schema/scalar"):
        page = (await client.get(path)).text
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.DOTALL)
        assert scripts, path
        for attributes, body in scripts:
            assert 'src="/schema/assets/' in attributes or 'type="application/json"' in attributes, (path, attributes)
            assert "src=" in attributes or body.startswith("{"), path
        assert "http" not in page, path  # nothing named on another origin
