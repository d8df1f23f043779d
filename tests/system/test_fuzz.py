"""Fuzzing the API against its own document: schemathesis sends what /schema/openapi.json allows, and what it
forbids, to the real app on the real test database. No answer may be a 5xx or differ from the document: what
the document allows is accepted, what it forbids is refused.

One test per operation, each with a bounded number of examples, derandomized: every run sends the same
requests. The totals by status are written at the end of the module's run (`fuzz: N requests by status: ...`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from functools import cache
from typing import Any

import hypothesis
import pytest
import schemathesis
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.transport.serialization import Binary

from service.accounts.passwords import hash_password
from service.app import create_app
from service.core.database_urls import backend_of
from service.core.settings import Settings
from service.developers.bulk.parsers import parse
from service.developers.errors import InvalidRows
from tests.client import TEST_SECRET, token
from tests.database import empty, fetchval, insert


@schemathesis.check
def documented_data_accepted(ctx: CheckContext, response: Response, case: schemathesis.Case) -> bool | None:
    """What the document allows is accepted: its rules are not stricter than the code's (positive_data_acceptance).

    schemathesis writes header values of letters and digits only: for a header whose pattern needs more (an event
    id's `-`) it falls back to a value outside the pattern and still labels the case valid. Such a case is judged
    by the other checks, not as valid data.
    """
    if response.status_code in {410, 412}:
        # A well-formed cursor whose events the feed no longer keeps (earlier tests ran the retention), or an
        # If-Match (or a batch item's if_match) that names no current version: the document states these, and
        # whether they happen depends on the data, not on the request's form.
        return None
    if response.status_code == 400 and (_across_items(response) or _unissued_token(response) or _not_rows(response)):
        return None
    headers = case.headers or {}
    if any(
        parameter.name in headers and not parameter.is_valid(headers[parameter.name])
        for parameter in case.operation.headers
    ):
        return None
    return positive_data_acceptance(ctx, response, case)


# Rules between a batch's items, which JSON Schema cannot state of an array of objects: a batch update names each id
# once (service.developers.bulk.service). A request that breaks only these is valid by the document, and refused.
ACROSS_ITEMS = ("appears more than once",)


def _not_rows(response: Response) -> bool:
    """An NDJSON or CSV body whose bytes are not rows, as the import's own parser reads them: the document calls
    these bodies binary strings (any bytes), and says in words only that they hold DeveloperCreate rows. Bytes that
    are rows stay judged by positive_data_acceptance."""
    media_type = (response.request.headers.get("Content-Type") or "").partition(";")[0].strip()
    if media_type not in {"application/x-ndjson", "text/csv"}:
        return False
    body = response.request.body or b""
    try:
        asyncio.run(_parse(media_type, body if isinstance(body, bytes) else body.encode()))
    except InvalidRows:
        return True
    return False


async def _parse(media_type: str, body: bytes) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield body

    async for _ in parse(media_type, pieces(), max_rows=len(body) + 1):  # more rows than any such body holds
        pass


def _unissued_token(response: Response) -> bool:
    """A Consistency-Token of the documented form that the service did not issue (its signature does not verify):
    refused, as an If-Match naming no version is, for what it names rather than its form."""
    try:
        extra = json.loads(response.content).get("extra") or []
    except (ValueError, AttributeError):
        return False
    return any(isinstance(item, dict) and item.get("key") == "Consistency-Token" for item in extra)


def _across_items(response: Response) -> bool:
    try:
        extra = json.loads(response.content).get("extra") or []
    except (ValueError, AttributeError):
        return False
    messages = [item.get("message", "") for item in extra if isinstance(item, dict)]
    return bool(messages) and all(message.endswith(ACROSS_ITEMS) for message in messages)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,  # what the document forbids is refused: its rules are not looser than the code's
    documented_data_accepted,  # what it allows is accepted: its rules are not stricter than the code's
    unsupported_method,  # an undocumented method is 405, with `Allow`
    allow_header_conformance,  # OPTIONS lists the documented methods
]
EXAMPLES = 100  # generated per operation, valid and invalid requests together, on top of the coverage cases
# Each call of these hashes a password with argon2 (about 0.1 s of CPU); the token route is also rate limited.
MAX_ID = 2**63 - 1
STREAM_SECONDS, STREAM_EXAMPLES = 0.3, 25  # each accepted request for the change feed lasts STREAM_SECONDS
FEW_EXAMPLES = {("/api/access/token", "POST"): 6, ("/api/users", "POST"): 10, ("/api/users/{account_id}", "PATCH"): 10}


def document() -> dict[str, Any]:
    """The document the app serves at /schema/openapi.json (serving it touches no database)."""
    app = create_app(Settings(database_url="postgresql://unused", secret_key=TEST_SECRET))
    return dict(TestClient(app).get("/schema/openapi.json").json())


def config() -> schemathesis.Config:
    few = [
        {"include-path": path, "include-method": method, "generation": {"max-examples": examples}}
        for (path, method), examples in FEW_EXAMPLES.items()
    ]
    # The change feed's stream answers for as long as the client stays: schemathesis keeps what it sent within
    # STREAM_SECONDS (keepalives only, on a quiet feed) and judges the answer's status and headers.
    stream = {
        "include-path": "/api/developers/events",
        "include-method": "GET",
        "request-timeout": STREAM_SECONDS,
        "generation": {"max-examples": STREAM_EXAMPLES},
    }
    return schemathesis.Config.from_dict(
        {
            "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
            "operations": [*few, stream],
        }
    )


api = schemathesis.openapi.from_dict(document(), config=config())


@schemathesis.serializer("application/x-ndjson")
def ndjson(_: schemathesis.SerializationContext, rows: Any) -> bytes:
    """The import's NDJSON body, a binary string in the document: the bytes generated (or the document's example) as
    they are. A value that is not a string (a negative case) is sent as JSON lines: a list one item a line, anything
    else one line; an object is then a row, which the server takes or refuses by DeveloperCreate's rules."""
    if (raw := _raw(rows)) is not None:
        return raw
    items = rows if isinstance(rows, list) and rows else [rows]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


@schemathesis.serializer("text/csv")
def csv_rows(_: schemathesis.SerializationContext, rows: Any) -> bytes:
    """The import's CSV body, a binary string in the document: the bytes generated (or the document's example) as
    they are. A value that is not a string (a negative case) is sent as rows where it is a list of objects with
    string values: a header row, then one record a row; anything else as a record with an unterminated quote,
    which the server must refuse."""
    if (raw := _raw(rows)) is not None:
        return raw
    malformed = b'name,email,specialty\n"unterminated\n'
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        return malformed
    if any(not isinstance(value, str) for row in rows for value in row.values()):
        return malformed
    fields = list(rows[0]) if rows else ["name", "email", "specialty"]
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _raw(value: Any) -> bytes | None:
    """The bytes of a generated binary string (schemathesis's Binary, a str holding them) or of an example."""
    if isinstance(value, Binary):
        return value.data
    if isinstance(value, str):
        return value.encode()
    return value if isinstance(value, bytes) else None


@cache
def password_hash() -> str:
    return hash_password("the fuzzer's own accounts")


async def seed(database_url: str) -> int:
    """Rows for the by-id routes to find, and the admin whose token the fuzzer sends; the admin's id.

    The generator draws the bounds of an id often: 1, and the largest id, which gets a row of each kind too on
    PostgreSQL. Not on MariaDB: a row stored with the largest id moves AUTO_INCREMENT past the end of the column,
    and no row could be created after it (PostgreSQL's sequences do not follow the ids stored).
    """
    await empty(database_url, "developers", "users")
    developers = [{"name": f"Dev {n}", "email": f"dev{n}@x.io", "specialty": "fuzz"} for n in range(1, 6)]
    await insert(database_url, "developers", developers)
    await insert(database_url, "users", [{"email": "fuzz@x.io", "password_hash": password_hash(), "role": "admin"}])
    if backend_of(database_url) == "postgresql":
        maximal = {"id": MAX_ID, "email": "max@x.io"}
        await insert(database_url, "developers", [maximal | {"name": "Max", "specialty": "fuzz"}])
        await insert(database_url, "users", [maximal | {"password_hash": password_hash(), "role": "viewer"}])
    return int(await fetchval(database_url, "SELECT id FROM users WHERE email = 'fuzz@x.io'"))


@pytest.fixture
def bearer(database_url: str) -> dict[str, str]:
    """An admin's token (every route is reachable), on a freshly seeded database."""
    return {"Authorization": f"Bearer {token('admin', asyncio.run(seed(database_url)))}"}


@pytest.fixture
def served(app: Litestar, bearer: dict[str, str]) -> Iterator[Litestar]:
    try:
        yield app
    finally:
        shutdown_lifespans()  # schemathesis ran the app's lifespan in its own event loop thread


@pytest.fixture(scope="module")
def statuses(request: pytest.FixtureRequest) -> Iterator[Counter[int]]:
    totals: Counter[int] = Counter()
    yield totals
    summary = ", ".join(f"{status}: {count}" for status, count in sorted(totals.items()))
    # Shown whether or not pytest captures output (-s): the totals belong in every run's log.
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\nfuzz: {sum(totals.values())} requests by status: {summary}")


@api.parametrize()
# Set here as well as in the config, so that no Hypothesis profile (CI=true loads one) changes them: the same
# cases on every run, no timing that depends on the machine. The app and its database are set up once per
# operation, not once per example: on purpose.
@hypothesis.settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture, hypothesis.HealthCheck.too_slow],
)
def test_every_answer_is_documented(
    case: schemathesis.Case, served: Litestar, bearer: dict[str, str], statuses: Counter[int]
) -> None:
    response = case.call(app=served, headers=bearer)
    statuses[response.status_code] += 1
    case.validate_response(response, checks=CHECKS)
