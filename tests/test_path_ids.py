"""Ids in paths are read strictly: ASCII digits from 1 to the largest id, nothing else, on every route that takes
one. Anything else is a 400 problem naming the parameter; a well-formed id that names nothing is 404."""

from __future__ import annotations

import httpx
import pytest

from service.web.path_ids import MESSAGE
from tests.client import assert_problem
from tests.database import empty, run_sql
from tests.developers.api import create

ROUTES = [
    ("GET", "/api/developers/{}", "developer_id", None),
    ("PATCH", "/api/developers/{}", "developer_id", {"name": "Two"}),
    ("DELETE", "/api/developers/{}", "developer_id", None),
    ("GET", "/api/imports/{}", "job_id", None),
    ("DELETE", "/api/imports/{}", "job_id", None),
    ("PATCH", "/api/users/{}", "account_id", {"role": "editor"}),
    ("DELETE", "/api/users/{}", "account_id", None),
]
# Each one is read as 1 by Python's int() or by msgspec's lenient conversion of a string.
NOT_IDS = [
    "%D9%A1",  # U+0661 ARABIC-INDIC DIGIT ONE
    "%EF%BC%91",  # U+FF11 FULLWIDTH DIGIT ONE
    "1%20",
    "%201",
    "1%0A",
    "+1",
    "01",
    "1_0",
    "1e0",
    "1.0",
    "abc",
    "0",
    "-1",
    str(2**63),
]


@pytest.fixture
async def one_of_each(client: httpx.AsyncClient, database_url: str) -> None:
    """A developer, an account and an import job, each with id 1."""
    await empty(database_url, "import_jobs", "import_uploads")
    await run_sql(
        database_url,
        "INSERT INTO users (email, password_hash, role) VALUES ('one@x.io', 'unusable', 'viewer')",
        "INSERT INTO import_jobs (status, on_conflict, media_type) VALUES ('succeeded', 'error', 'text/csv')",
    )
    assert (await create(client, name="One", email="one@x.io", specialty="ids"))["id"] == 1


@pytest.mark.parametrize(("method", "path", "key", "body"), ROUTES)
async def test_only_ascii_digits_name_a_resource(
    client: httpx.AsyncClient, one_of_each: None, method: str, path: str, key: str, body: dict[str, str] | None
) -> None:
    for segment in NOT_IDS:
        response = await client.request(method, path.format(segment), json=body)
        problem = assert_problem(response, 400)
        assert problem["extra"] == [{"key": key, "source": "path", "message": MESSAGE}], segment
    # The id itself reaches its resource (a finished job cannot be cancelled: 409).
    assert (await client.request(method, path.format(1), json=body)).status_code in {200, 204, 409}


async def test_a_well_formed_id_that_names_nothing_is_404(client: httpx.AsyncClient, one_of_each: None) -> None:
    for path in ("/api/developers/2", "/api/imports/2", f"/api/developers/{2**63 - 1}"):
        assert_problem(await client.get(path), 404)
    assert_problem(await client.delete("/api/users/2"), 404)
