"""One log line per request, and the request's id on its answer and on every log line written while serving it."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from service.request_log import ConsoleFormatter, JSONFormatter, RequestIdFilter
from tests.accounts.api import PASSWORD, account, sign_in
from tests.client import assert_problem, serve
from tests.db.unreachable import unreachable_app
from tests.developers.api import create

GENERATED = re.compile(r"[0-9a-f]{32}")


def request_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "service.requests"]


def line_of(caplog: pytest.LogCaptureFixture, rid: str) -> logging.LogRecord:
    (record,) = [record for record in request_lines(caplog) if record.request_id == rid]  # type: ignore[attr-defined]
    return record


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RequestIdFilter())  # as the app's own handlers carry it
    return caplog


async def test_a_client_request_id_is_echoed_and_logged_with_the_request(
    client: httpx.AsyncClient, logs: pytest.LogCaptureFixture
) -> None:
    viewer_id = (await account(client, "ada@x.io", "viewer"))["id"]
    signed_in = await sign_in(client, "ada@x.io")
    assert signed_in.status_code == 200, signed_in.text
    viewer_token = signed_in.json()["access_token"]
    developer = await create(client, name="Ada", email="ada@dev.io", specialty="math")

    response = await client.get(
        f"/api/developers/{developer['id']}",
        headers={"X-Request-ID": "abc-123.x:Y_z", "Authorization": f"Bearer {viewer_token}"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "abc-123.x:Y_z"
    record = line_of(logs, "abc-123.x:Y_z")
    assert record.method == "GET"  # type: ignore[attr-defined]
    assert record.route == "/api/developers/{developer_id}"  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]
    assert record.account_id == viewer_id  # type: ignore[attr-defined]
    assert record.duration_ms >= 0  # type: ignore[attr-defined]
    assert f"/api/developers/{developer['id']}" not in record.getMessage()  # the template, never the raw path

    # Both formats carry every field, and nothing else of the request.
    as_json = json.loads(JSONFormatter().format(record))
    assert as_json["request_id"] == "abc-123.x:Y_z"
    assert {k: as_json[k] for k in ("method", "route", "status", "account_id")} == {
        "method": "GET",
        "route": "/api/developers/{developer_id}",
        "status": 200,
        "account_id": viewer_id,
    }
    console = ConsoleFormatter().format(record)
    assert "[abc-123.x:Y_z] GET /api/developers/{developer_id} 200 " in console
    assert console.endswith(f"account {viewer_id}")

    # The token, the password and the bodies are in no line at all.
    everything = "\n".join(
        [JSONFormatter().format(r) for r in logs.records] + [ConsoleFormatter().format(r) for r in logs.records]
    )
    assert viewer_token not in everything
    assert viewer_token.split(".")[2] not in everything
    assert PASSWORD not in everything
    assert "ada@x.io" not in everything
    assert "ada@dev.io" not in everything


async def test_without_a_header_an_id_is_generated(client: httpx.AsyncClient, logs: pytest.LogCaptureFixture) -> None:
    first, second = await client.get("/api/developers"), await client.get("/api/developers")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(GENERATED.fullmatch(rid) for rid in ids)
    assert ids[0] != ids[1]
    assert line_of(logs, ids[0]).route == "/api/developers"  # type: ignore[attr-defined]
    assert line_of(logs, ids[0]).account_id == 0  # type: ignore[attr-defined]  # the test token's subject


@pytest.mark.parametrize(
    "value",
    ["", "a" * 129, "has space", 'quote"d', "new\\nline", "ünïcode".encode(), "{json}"],
    ids=["empty", "too-long", "space", "quote", "escape", "non-ascii", "braces"],
)
async def test_an_insane_header_is_replaced(
    client: httpx.AsyncClient, logs: pytest.LogCaptureFixture, value: str | bytes
) -> None:
    response = await client.get("/api/developers", headers={"X-Request-ID": value})
    assert response.status_code == 200
    rid = response.headers["x-request-id"]
    assert GENERATED.fullmatch(rid)
    assert line_of(logs, rid).status == 200  # type: ignore[attr-defined]


async def test_a_128_character_id_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/developers", headers={"X-Request-ID": "a" * 128})
    assert response.headers["x-request-id"] == "a" * 128


async def test_problem_answers_carry_the_id(client: httpx.AsyncClient, logs: pytest.LogCaptureFixture) -> None:
    not_found = await client.get("/no/such/route", headers={"X-Request-ID": "r404"})
    assert_problem(not_found, 404)
    assert not_found.headers["x-request-id"] == "r404"
    unmatched = line_of(logs, "r404")
    assert (unmatched.route, unmatched.status, unmatched.account_id) == (None, 404, None)  # type: ignore[attr-defined]
    assert "/no/such/route" not in unmatched.getMessage()

    missing = await client.get("/api/developers/999999", headers={"X-Request-ID": "missing"})
    assert_problem(missing, 404)
    assert missing.headers["x-request-id"] == "missing"
    assert line_of(logs, "missing").route == "/api/developers/{developer_id}"  # type: ignore[attr-defined]

    unauthorized = await client.get(
        "/api/developers", headers={"X-Request-ID": "r401", "Authorization": "Bearer x.y.z"}
    )
    assert_problem(unauthorized, 401)
    assert unauthorized.headers["x-request-id"] == "r401"
    record = line_of(logs, "r401")
    assert (record.status, record.account_id) == (401, None)  # type: ignore[attr-defined]

    not_allowed = await client.put("/api/developers", headers={"X-Request-ID": "r405"})
    assert not_allowed.status_code == 405
    assert not_allowed.headers["x-request-id"] == "r405"


async def test_failed_sign_in_logs_neither_password_nor_username(
    client: httpx.AsyncClient, logs: pytest.LogCaptureFixture
) -> None:
    response = await sign_in(client, "nobody@x.io", "a wrong password of some length")
    assert response.status_code == 401
    record = line_of(logs, response.headers["x-request-id"])
    assert (record.method, record.route, record.status) == ("POST", "/api/access/token", 401)  # type: ignore[attr-defined]
    text = "\n".join(JSONFormatter().format(r) for r in logs.records)
    assert "a wrong password" not in text
    assert "nobody@x.io" not in text


@pytest.fixture
async def unreachable() -> AsyncIterator[httpx.AsyncClient]:
    # Started before the test, as Litestar's logging setup replaces the root handlers caplog has added by then.
    async with serve(unreachable_app()) as client:
        yield client


async def test_the_503_warning_carries_the_request_id(
    unreachable: httpx.AsyncClient, logs: pytest.LogCaptureFixture
) -> None:
    response = await unreachable.get("/api/developers", headers={"X-Request-ID": "down-1"})
    assert_problem(response, 503)
    assert response.headers["x-request-id"] == "down-1"
    warnings = [r for r in logs.records if r.name == "service.problems"]
    assert [r.request_id for r in warnings] == ["down-1"]  # type: ignore[attr-defined]
    assert line_of(logs, "down-1").status == 503  # type: ignore[attr-defined]


def test_lines_outside_a_request_have_no_id() -> None:
    record = logging.LogRecord("service.x", logging.INFO, __file__, 1, "hello %s", ("there",), None)
    RequestIdFilter().filter(record)
    assert json.loads(JSONFormatter().format(record))["request_id"] is None
    assert "[-] hello there" in ConsoleFormatter().format(record)
