"""An upload whose database session is ended while its body is still arriving (by an operator, or by PostgreSQL's
idle-in-transaction timeout) ends then, with a 503, and frees its pool slot: not when its body ends, which a
trickling client can put off for ever."""

from __future__ import annotations

import asyncio
import time

import pytest

from service.core.settings import Settings
from service.developers.bulk.parsers import FIRST_CHUNK_ROWS
from tests.database import fetch, run_sql
from tests.developers.api import encode, people
from tests.developers.export_support import serving
from tests.developers.feed_client import bearer, until
from tests.postgresql_only import SESSIONS
from tests.raw_http import SlowUpload, port_of

pytestmark = SESSIONS

IN_TRANSACTION = """
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = 'devdir' AND state = 'idle in transaction'"""
PROMPTLY = 15.0  # seconds: a deadline for the answer, never a measurement (the trickle itself never ends)


@pytest.mark.parametrize("path", ["/api/developers/bulk", "/api/developers/imports"])
@pytest.mark.parametrize("ended_by", ["pg_terminate_backend", "idle_in_transaction_session_timeout"])
async def test_an_upload_whose_session_is_ended_answers_at_once_and_frees_its_slot(
    settings: Settings, path: str, ended_by: str
) -> None:
    idle_ms = 1000 if ended_by == "idle_in_transaction_session_timeout" else 0
    # No minimum rate and a long idle timeout: nothing but the lost connection can end this upload.
    limits = {
        "body_min_bytes_per_second": 0,
        "body_idle_timeout_seconds": 60,
        "db_idle_in_transaction_timeout_ms": idle_ms,
    }
    jobs = "SELECT count(*) FROM import_jobs"
    jobs_before = (await fetch(settings.database_url, jobs))[0][0]
    async with serving(settings, **limits) as served:
        start = encode("ndjson", people(FIRST_CHUNK_ROWS + 1))  # a first chunk COPYed: a transaction is open
        upload = SlowUpload(port_of(str(served.api.base_url)), path, bearer("editor"), start, interval=0.2)
        upload.headers["Content-Type"] = "application/x-ndjson"
        upload.begin()
        try:
            await until(lambda: served.checked_out() == 1, "the upload to hold a connection")
            if ended_by == "pg_terminate_backend":
                waiting = await _waiting_for_the_body(served.database_url)
                await run_sql(served.database_url, f"SELECT pg_terminate_backend({waiting})")
            ended = time.monotonic()
            answer = await upload.answered(within=PROMPTLY)
            assert answer.status == 503, answer
            assert answer.headers["retry-after"] == "1"
            assert time.monotonic() - ended < PROMPTLY
            await until(lambda: served.checked_out() == 0, "the slot to be freed")
            # The pool serves on: the dead connection was discarded, not handed to the next request.
            developer = {"name": "After", "email": "after@x.io", "specialty": "s"}
            assert (await served.api.post("/api/developers", json=developer)).status_code == 201
        finally:
            await upload.stop()
        imported = await fetch(served.database_url, "SELECT count(*) FROM developers WHERE specialty = 'imported'")
        assert imported[0][0] == 0
        assert (await fetch(served.database_url, jobs))[0][0] == jobs_before


async def _waiting_for_the_body(database_url: str) -> int:
    """The server process of the upload's session, once it is idle inside its transaction."""
    deadline = time.monotonic() + 30
    while not (pids := [row["pid"] for row in await fetch(database_url, IN_TRANSACTION)]):
        assert time.monotonic() < deadline, "the upload's session never waited inside its transaction"
        await asyncio.sleep(0.02)
    (pid,) = pids
    return int(pid)
