"""One log line per request, and the request's id on its answer and on every log line written while serving it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from service.core.settings import Settings
from service.observability import log_writer, request_ids
from service.observability.log_format import ConsoleFormatter, JSONFormatter, RequestLine
from service.observability.request_ids import RequestIdFilter
from tests.accounts.api import PASSWORD, account, sign_in
from tests.client import assert_problem, serve, token
from tests.db.unreachable import unreachable_app
from tests.developers.api import create
from tests.developers.feed_client import bearer, running, socket, subscribed_socket
from tests.system.log_lines import Lines, captured

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def logs(client: httpx.AsyncClient) -> Iterator[Lines]:
    # After the app's own logging setup (the client's app is built first), which sets the writer's format.
    with captured() as lines:
        yield lines


async def test_a_client_request_id_is_echoed_and_logged_with_the_request(
    client: httpx.AsyncClient, logs: Lines
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
    line = logs.of("abc-123.x:Y_z")
    assert {k: line[k] for k in ("level", "method", "route", "status", "account_id")} == {
        "level": "INFO",
        "method": "GET",
        "route": "/api/developers/{developer_id}",
        "status": 200,
        "account_id": viewer_id,
    }
    assert line["duration_ms"] >= 0
    assert line["message"].startswith("GET /api/developers/{developer_id} 200 ")
    assert f"/api/developers/{developer['id']}" not in json.dumps(line)  # the template, never the raw path

    # The token, the password and the bodies are in no line at all.
    everything = logs.text()
    assert viewer_token not in everything
    assert viewer_token.split(".")[2] not in everything
    assert PASSWORD not in everything
    assert "ada@x.io" not in everything
    assert "ada@dev.io" not in everything


def test_the_console_line_says_what_the_json_line_says() -> None:
    line = RequestLine(1_700_000_000.25, "abc", "GET", "/api/developers/{developer_id}", 200, 1.234, 7)
    console = ConsoleFormatter().format_request(line)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,250 INFO    service.requests \[abc\] "
        r"GET /api/developers/\{developer_id\} 200 1.23 ms account 7",
        console,
    ), console
    # The same line through logging's own path (a record, as a formatter that is not ours is given) reads alike.
    assert ConsoleFormatter().format(line.record()) == console
    as_json = json.loads(JSONFormatter().format_request(line))
    assert as_json == json.loads(JSONFormatter().format(line.record()))
    assert as_json == {
        "time": "2023-11-14T22:13:20.250Z",
        "level": "INFO",
        "logger": "service.requests",
        "message": "GET /api/developers/{developer_id} 200 1.23 ms account 7",
        "request_id": "abc",
        "method": "GET",
        "route": "/api/developers/{developer_id}",
        "status": 200,
        "duration_ms": 1.234,
        "account_id": 7,
    }
    anonymous = line._replace(route=None, status=404, account_id=None)
    assert ConsoleFormatter().format_request(anonymous).endswith("[abc] GET - 404 1.23 ms account -")


async def test_any_formatter_gets_the_request_line_as_a_record(client: httpx.AsyncClient) -> None:
    with captured(logging.Formatter("%(name)s|%(request_id)s|%(status)s|%(message)s")) as lines:
        response = await client.get("/api/developers", headers={"X-Request-ID": "plain"})
        text = lines.text()
    assert response.status_code == 200
    (line,) = [line for line in text.splitlines() if "|plain|" in line]
    assert line.startswith("service.requests|plain|200|GET /api/developers 200 ")


async def test_without_a_header_an_id_is_generated(client: httpx.AsyncClient, logs: Lines) -> None:
    first, second = await client.get("/api/developers"), await client.get("/api/developers")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(GENERATED.fullmatch(rid) for rid in ids)
    assert ids[0] != ids[1]
    assert logs.of(ids[0])["route"] == "/api/developers"
    assert logs.of(ids[0])["account_id"] == 0  # the test token's subject


def test_generated_ids_differ_in_a_forked_process() -> None:
    # A granian worker is a forked child: its ids must not repeat its parent's, or a sibling's.
    here = [request_ids.new_id() for _ in range(3)]
    assert len(set(here)) == 3
    reader, writer_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child process)
        os.write(writer_end, request_ids.new_id().encode())
        os._exit(0)
    os.close(writer_end)
    os.waitpid(child, 0)
    theirs = os.read(reader, 64).decode()
    os.close(reader)
    assert GENERATED.fullmatch(theirs)
    assert theirs[:16] != here[0][:16]  # a random half of its own
    assert theirs not in here


@pytest.mark.parametrize(
    "value",
    ["", "a" * 129, "has space", 'quote"d', "new\\nline", "ünïcode".encode(), "{json}"],
    ids=["empty", "too-long", "space", "quote", "escape", "non-ascii", "braces"],
)
async def test_an_insane_header_is_replaced(client: httpx.AsyncClient, logs: Lines, value: str | bytes) -> None:
    response = await client.get("/api/developers", headers={"X-Request-ID": value})
    assert response.status_code == 200
    rid = response.headers["x-request-id"]
    assert GENERATED.fullmatch(rid)
    assert logs.of(rid)["status"] == 200


async def test_a_128_character_id_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/developers", headers={"X-Request-ID": "a" * 128})
    assert response.headers["x-request-id"] == "a" * 128


async def test_problem_answers_carry_the_id(client: httpx.AsyncClient, logs: Lines) -> None:
    not_found = await client.get("/no/such/route", headers={"X-Request-ID": "r404"})
    assert_problem(not_found, 404)
    assert not_found.headers["x-request-id"] == "r404"
    unmatched = logs.of("r404")
    assert (unmatched["route"], unmatched["status"], unmatched["account_id"]) == (None, 404, None)
    assert "/no/such/route" not in json.dumps(unmatched)

    missing = await client.get("/api/developers/999999", headers={"X-Request-ID": "missing"})
    assert_problem(missing, 404)
    assert missing.headers["x-request-id"] == "missing"
    assert logs.of("missing")["route"] == "/api/developers/{developer_id}"

    unauthorized = await client.get(
        "/api/developers", headers={"X-Request-ID": "r401", "Authorization": "Bearer x.y.z"}
    )
    assert_problem(unauthorized, 401)
    assert unauthorized.headers["x-request-id"] == "r401"
    line = logs.of("r401")
    assert (line["status"], line["account_id"]) == (401, None)

    not_allowed = await client.put("/api/developers", headers={"X-Request-ID": "r405"})
    assert not_allowed.status_code == 405
    assert not_allowed.headers["x-request-id"] == "r405"
    assert logs.of("r405")["status"] == 405


async def test_failed_sign_in_logs_neither_password_nor_username(client: httpx.AsyncClient, logs: Lines) -> None:
    response = await sign_in(client, "nobody@x.io", "a wrong password of some length")
    assert response.status_code == 400  # invalid_grant (RFC 6749, 5.2)
    line = logs.of(response.headers["x-request-id"])
    assert (line["method"], line["route"], line["status"]) == ("POST", "/api/access/token", 400)
    text = logs.text()
    assert "a wrong password" not in text
    assert "nobody@x.io" not in text


@pytest.fixture
async def unreachable() -> AsyncIterator[httpx.AsyncClient]:
    async with serve(unreachable_app()) as client:
        yield client


async def test_the_503_warning_carries_the_request_id(unreachable: httpx.AsyncClient) -> None:
    with captured() as logs:
        response = await unreachable.get("/api/developers", headers={"X-Request-ID": "down-1"})
        assert_problem(response, 503)
        assert response.headers["x-request-id"] == "down-1"
        warnings = [line for line in logs.all() if line["logger"] == "service.problems"]
        assert [(line["level"], line["request_id"]) for line in warnings] == [("WARNING", "down-1")]
        assert logs.of("down-1")["status"] == 503


async def test_a_websocket_gets_an_id_and_a_line_when_it_closes(settings: Settings) -> None:
    foreign = token(secret="another-signing-key-of-forty-characters!")
    async with running(settings) as run:
        with captured() as logs:
            async with subscribed_socket(run, headers={**bearer(), "X-Request-ID": "ws-1"}):
                pass
            with pytest.raises(InvalidStatus) as refusal:
                async with socket(run, subprotocols=["bearer", foreign]):
                    pass
            assert refusal.value.response.status_code == 403
            for _ in range(500):  # the server writes a socket's line once it has seen it close
                if len([line for line in logs.requests() if line["method"] == "WEBSOCKET"]) == 2:
                    break
                await asyncio.sleep(0.01)
            sockets = [line for line in logs.requests() if line["method"] == "WEBSOCKET"]
    route = "/api/developers/events/ws"
    assert [(line["request_id"], line["route"], line["status"]) for line in sockets[:1]] == [("ws-1", route, 101)]
    (refused,) = sockets[1:]
    assert (refused["route"], refused["status"], refused["account_id"]) == (route, 403, None)
    assert GENERATED.fullmatch(refused["request_id"])


def test_lines_outside_a_request_have_no_id() -> None:
    record = logging.LogRecord("service.x", logging.INFO, __file__, 1, "hello %s", ("there",), None)
    RequestIdFilter().filter(record)
    assert json.loads(JSONFormatter().format(record))["request_id"] is None
    assert "[-] hello there" in ConsoleFormatter().format(record)


def test_a_log_reader_that_falls_behind_loses_lines_not_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_writer, "MAX_PENDING", 3)
    own = log_writer.LineWriter()
    own.stream, own.formatter = io.StringIO(), JSONFormatter()
    for number in range(5):
        own.put(RequestLine(1_700_000_000.0, f"r{number}", "GET", "/api/developers", 200, 1.0, None))
    own.flush()
    lines = [json.loads(line) for line in own.stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines[:3]] == ["r0", "r1", "r2"]
    assert (lines[3]["level"], lines[3]["message"]) == (
        "WARNING",
        "2 log lines dropped: stderr did not take them fast enough",
    )
    assert len(lines) == 4
