"""Broken request bodies over real sockets, on every route kind that reads one: a chunked encoding granian cannot
parse is a 400 problem, a client gone mid-body is logged and counted as 499; never a 500, nothing written."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.client import token
from tests.database import fetch
from tests.raw_http import exchange, head, port_of, send_and_close
from tests.server import served
from tests.system.log_lines import Lines, captured
from tests.system.scrape import Samples, parse, value

JSON, NDJSON, FORM = "application/json", "application/x-ndjson", "application/x-www-form-urlencoded"
# (method, path, route template, Content-Type, role of the caller's token)
ROUTES = [
    ("POST", "/api/access/token", "/api/access/token", FORM, None),
    ("POST", "/api/developers", "/api/developers", JSON, "admin"),
    ("PATCH", "/api/developers", "/api/developers", JSON, "admin"),
    ("PATCH", "/api/developers/1", "/api/developers/{developer_id}", JSON, "admin"),
    ("POST", "/api/developers/bulk-delete", "/api/developers/bulk-delete", JSON, "admin"),
    ("POST", "/api/users", "/api/users", JSON, "admin"),
    ("PATCH", "/api/users/1", "/api/users/{account_id}", JSON, "admin"),
    ("POST", "/api/developers/bulk", "/api/developers/bulk", NDJSON, "editor"),
    ("POST", "/api/developers/imports", "/api/developers/imports", NDJSON, "editor"),
]
ROUTE_IDS = [f"{method} {template}" for method, _, template, _, _ in ROUTES]
TABLES = ("developers", "users", "import_jobs", "import_uploads")


def headers(content_type: str, role: str | None, rid: str) -> dict[str, str]:
    sent = {"Content-Type": content_type, "X-Request-ID": rid}
    return sent | ({"Authorization": f"Bearer {token(role)}"} if role else {})  # type: ignore[arg-type]


async def stored(database_url: str) -> dict[str, int]:
    return {name: (await fetch(database_url, f"SELECT count(*) FROM {name}"))[0][0] for name in TABLES}


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(base_url=url) as client:
        return parse((await client.get("/metrics")).text)


def server_errors(samples: Samples) -> dict[Any, float]:
    return {
        labels: count
        for (name, labels), count in samples.items()
        if name == "devdir_requests_total" and dict(labels)["status_code"].startswith("5")
    }


def no_error_logged(logs: Lines) -> None:
    lines = logs.all()
    assert [line for line in lines if line["level"] in {"ERROR", "CRITICAL"} or "exception" in line] == []


@pytest.mark.parametrize(("method", "path", "template", "content_type", "role"), ROUTES, ids=ROUTE_IDS)
async def test_a_malformed_chunked_body_is_a_400_problem(
    app: Litestar, database_url: str, method: str, path: str, template: str, content_type: str, role: str | None
) -> None:
    before = await stored(database_url)
    with captured() as logs:
        async with served(app) as url:
            sent = headers(content_type, role, "malformed-chunk") | {"Transfer-Encoding": "chunked"}
            answer = await exchange(port_of(url), head(method, path, sent | {"Connection": "close"}) + b"ZZ\r\n\r\n")
            samples = await scrape(url)
        assert answer.status == 400, answer
        assert answer.headers["content-type"].startswith("application/problem+json")
        problem = answer.json()  # the whole body, as its Content-Length said
        assert (problem["status"], problem["title"]) == (400, "Bad Request")
        assert "chunked encoding is malformed" in problem["detail"]
        assert logs.of("malformed-chunk")["status"] == 400
        no_error_logged(logs)
    assert value(samples, "devdir_requests_total", method=method, path=template, status_code="400") == 1
    assert server_errors(samples) == {}
    assert await stored(database_url) == before


@pytest.mark.parametrize(("method", "path", "template", "content_type", "role"), ROUTES, ids=ROUTE_IDS)
async def test_a_client_gone_mid_body_is_499_and_no_server_error(
    app: Litestar, database_url: str, method: str, path: str, template: str, content_type: str, role: str | None
) -> None:
    before = await stored(database_url)
    counted = {"method": method, "path": template, "status_code": "499"}
    with captured() as logs:
        async with served(app) as url:
            sent = headers(content_type, role, "client-gone") | {"Content-Length": "50"}
            start = b"username=a" if content_type == FORM else b'{"name": "'  # 10 of the 50 bytes announced
            await send_and_close(port_of(url), head(method, path, sent) + start)
            deadline = time.monotonic() + 30
            while value(samples := await scrape(url), "devdir_requests_total", **counted) == 0:
                assert time.monotonic() < deadline, "the request was never counted as 499"
                await asyncio.sleep(0.05)
        line = logs.of("client-gone")
        assert (line["route"], line["status"]) == (template, 499)
        no_error_logged(logs)
    assert server_errors(samples) == {}
    assert await stored(database_url) == before
