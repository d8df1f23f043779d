"""Background imports on MariaDB, in process: the three formats to `succeeded`, progress while running, cancels
(queued, running), a bad body's problem stored, a job out of attempts failed, the import's connection KILLed
midway (the job retried and finished once), and what the queue holds through it all."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from service.core.settings import Settings
from service.imports.worker import Worker
from tests import mariadb
from tests.client import assert_problem
from tests.developers.api import FORMATS, bulk, encode, people
from tests.imports.api import job, quick, submitted, until_job
from tests.imports.mariadb_jobs import client_of, import_connections, queue_size, row_5000_held, until_queue_empty
from tests.polling import until

ROWS = 30_000


@pytest.fixture
async def api(mariadb_settings: Settings, mariadb_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's client of an app on MariaDB with a worker in its process."""
    async with client_of(quick(mariadb_settings), mariadb_url) as client:
        yield client


@pytest.fixture
async def idle(mariadb_settings: Settings, mariadb_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The same, with no worker: jobs stay queued."""
    async with client_of(mariadb_settings, mariadb_url) as client:
        yield client


async def emails(url: str) -> list[str]:
    return [row[0] for row in await mariadb.fetch(url, "SELECT email FROM developers ORDER BY email")]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_each_format_imports_every_row_once(api: httpx.AsyncClient, mariadb_url: str, fmt: str) -> None:
    job_id = await submitted(api, fmt, people(2500))
    assert await queue_size(mariadb_url) in (0, 1)
    done = await until_job(api, job_id)
    assert done["status"] == "succeeded", done
    counts = (done["rows_total"], done["rows_done"], done["created"], done["updated"], done["skipped"])
    assert counts == (2500, 2500, 2500, 0, 0)
    assert done["error"] is None
    assert done["started_at"] <= done["finished_at"]
    assert done["finished_at"].endswith("Z")
    rows = await mariadb.fetch(mariadb_url, "SELECT name, email, specialty FROM developers ORDER BY name")
    assert [{"name": n, "email": e, "specialty": s} for n, e, s in rows] == people(2500)
    assert await mariadb.fetchval(mariadb_url, "SELECT count(*) FROM import_uploads") == 0
    assert await queue_size(mariadb_url) == 0
    assert await mariadb.fetchval(mariadb_url, f"SELECT attempts FROM import_jobs WHERE id = {job_id}") == 1


async def test_skip_and_update_modes(api: httpx.AsyncClient, mariadb_url: str) -> None:
    await mariadb.run_sql(
        mariadb_url, "INSERT INTO developers (name, email, specialty) VALUES ('Old', 'DEV3@bulk.io', 'kept')"
    )
    skipped = await until_job(api, await submitted(api, "ndjson", people(10), on_conflict="skip"))
    assert (skipped["status"], skipped["created"], skipped["skipped"]) == ("succeeded", 9, 1), skipped
    updated = await until_job(api, await submitted(api, "csv", people(12, specialty="new"), on_conflict="update"))
    assert (updated["status"], updated["created"], updated["updated"]) == ("succeeded", 2, 10), updated
    assert len(await emails(mariadb_url)) == 12


async def test_a_body_larger_than_one_piece_is_stored_in_pieces(idle: httpx.AsyncClient, mariadb_url: str) -> None:
    body = encode("ndjson", people(40_000))
    assert len(body) > 2 << 20
    job_id = await submitted(idle, "ndjson", body)
    pieces = await mariadb.fetch(
        mariadb_url, f"SELECT seq, length(data) FROM import_uploads WHERE job_id = {job_id} ORDER BY seq"
    )
    assert [seq for seq, _ in pieces] == list(range(len(pieces)))
    assert sum(size for _, size in pieces) == len(body)
    assert (await job(idle, job_id))["status"] == "queued"
    assert await queue_size(mariadb_url) == 1


async def test_progress_is_visible_while_the_import_runs(api: httpx.AsyncClient, mariadb_url: str) -> None:
    async with row_5000_held(mariadb_url):
        job_id = await submitted(api, "ndjson", people(ROWS))
        running = await until_job(api, job_id, lambda j: j["status"] == "running" and j["rows_done"] > 0, "running")
        assert 0 < running["rows_done"] < ROWS
        assert running["started_at"] is not None
        assert await mariadb.fetchval(mariadb_url, "SELECT count(*) FROM developers") == 0  # nothing committed yet
    done = await until_job(api, job_id)
    assert (done["status"], done["rows_done"], done["created"]) == ("succeeded", ROWS, ROWS), done


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_bad_row_fails_the_job_with_its_problem(api: httpx.AsyncClient, mariadb_url: str, fmt: str) -> None:
    body = encode(fmt, [*people(1500), {"name": "Bad", "email": "not-an-email", "specialty": "x"}])
    expected = assert_problem(await bulk(api, fmt, body), 400)
    done = await until_job(api, await submitted(api, fmt, body))
    assert done["status"] == "failed", done
    assert done["error"] == expected
    assert "row 1501" in done["error"]["detail"]
    assert (done["rows_total"], done["created"]) == (None, None)
    assert await mariadb.fetchval(mariadb_url, "SELECT count(*) FROM developers") == 0
    assert await mariadb.fetchval(mariadb_url, "SELECT count(*) FROM import_uploads") == 0
    assert await queue_size(mariadb_url) == 0
    stored = await mariadb.fetchval(mariadb_url, f"SELECT error FROM import_jobs WHERE id = {done['id']}")
    assert msgspec.json.decode(stored) == done["error"]


async def test_cancel_while_queued_then_a_worker_drops_the_entry(
    idle: httpx.AsyncClient, mariadb_settings: Settings, mariadb_url: str
) -> None:
    job_id = await submitted(idle, "json", people(10))
    response = await idle.delete(f"/api/imports/{job_id}")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert (cancelled["status"], cancelled["cancel_requested"]) == ("cancelled", True)
    assert cancelled["finished_at"] is not None
    assert_problem(await idle.delete(f"/api/imports/{job_id}"), 409)
    assert await mariadb.fetchval(mariadb_url, "SELECT count(*) FROM import_uploads") == 0
    worker = Worker(quick(mariadb_settings))
    async with worker.lifespan(None):
        await until(lambda: worker.ready, "the worker to be ready")
        await until_queue_empty(mariadb_url)
    assert (await job(idle, job_id))["status"] == "cancelled"
    assert await mariadb.fetchval(mariadb_url, "SELECT count(*) FROM developers") == 0


async def test_cancel_while_running_writes_nothing(api: httpx.AsyncClient, mariadb_url: str) -> None:
    async with row_5000_held(mariadb_url):
        job_id = await submitted(api, "ndjson", people(ROWS))
        await until_job(api, job_id, lambda j: j["status"] == "running" and j["rows_done"] > 0, "running")
        response = await api.delete(f"/api/imports/{job_id}")
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)
    done = await until_job(api, job_id)
    assert done["status"] == "cancelled", done
    assert await mariadb.fetchval(mariadb_url, "SELECT count(*) FROM developers") == 0
    assert await queue_size(mariadb_url) == 0
    assert await mariadb.fetchval(mariadb_url, "SELECT count(*) FROM import_uploads") == 0


async def test_a_job_out_of_attempts_is_failed_without_running(
    idle: httpx.AsyncClient, mariadb_settings: Settings, mariadb_url: str
) -> None:
    job_id = await submitted(idle, "json", people(5))
    await mariadb.run_sql(mariadb_url, f"UPDATE import_jobs SET attempts = 3 WHERE id = {job_id}")
    worker = Worker(quick(mariadb_settings, import_max_attempts=3))
    async with worker.lifespan(None):
        done = await until_job(idle, job_id)
    assert done["status"] == "failed"
    assert done["error"]["detail"].startswith("gave up after 3 attempts")
    assert await mariadb.fetchval(mariadb_url, "SELECT count(*) FROM developers") == 0
    assert await queue_size(mariadb_url) == 0


async def test_the_import_connection_killed_midway_is_retried_and_finished_once(
    api: httpx.AsyncClient, mariadb_url: str
) -> None:
    async with row_5000_held(mariadb_url):
        job_id = await submitted(api, "ndjson", people(ROWS))
        await until_job(api, job_id, lambda j: j["status"] == "running" and j["rows_done"] > 0, "running")
        found: list[int] = []

        async def waiting() -> bool:
            found[:] = await import_connections(mariadb_url)
            return bool(found)

        await until(waiting, "the import's INSERT to wait for the held row")
        await mariadb.run_sql(mariadb_url, *(f"KILL CONNECTION {connection}" for connection in found))
        queued = await until_job(api, job_id, lambda j: j["status"] == "queued", "queued again")
        assert queued["rows_done"] == 0
        retry = await mariadb.fetchval(
            mariadb_url, f"SELECT run_after > NOW(6) FROM import_queue WHERE job_id = {job_id}"
        )
        assert retry == 1  # the retry waits its backoff (1 s)
    done = await until_job(api, job_id)
    assert (done["status"], done["created"]) == ("succeeded", ROWS), done
    # At least the killed attempt and the one that succeeded; on a busy machine a retry may start before the held
    # row is let go, wait for its lock past the statement's limit and be retried once more.
    assert await mariadb.fetchval(mariadb_url, f"SELECT attempts FROM import_jobs WHERE id = {job_id}") >= 2
    assert await mariadb.fetchval(mariadb_url, "SELECT count(*) FROM developers") == ROWS
    assert await queue_size(mariadb_url) == 0


async def test_taken_emails_fail_the_job_with_the_bulk_routes_409(api: httpx.AsyncClient, mariadb_url: str) -> None:
    await mariadb.run_sql(
        mariadb_url, "INSERT INTO developers (name, email, specialty) VALUES ('Old', 'dev2@bulk.io', 'k')"
    )
    done = await until_job(api, await submitted(api, "json", people(5)))
    assert done["status"] == "failed", done
    assert done["error"]["status"] == 409
    assert done["error"]["extra"] == [{"email": "dev2@bulk.io", "rows": [3], "reason": "taken"}]
    assert await emails(mariadb_url) == ["dev2@bulk.io"]


async def test_the_worker_deletes_old_finished_jobs_and_expired_events(
    idle: httpx.AsyncClient, mariadb_settings: Settings, mariadb_url: str
) -> None:
    old, recent = [await submitted(idle, "json", people(1, i)) for i in range(2)]
    await mariadb.run_sql(
        mariadb_url,
        f"UPDATE import_jobs SET status = 'cancelled', finished_at = NOW(6) - INTERVAL 200 HOUR WHERE id = {old}",
        f"UPDATE import_jobs SET status = 'cancelled', finished_at = NOW(6) WHERE id = {recent}",
        "DELETE FROM import_queue",
        "INSERT INTO developer_events (seq, op, developer_id, at) VALUES (1, 'deleted', 1, NOW(6) - INTERVAL 200 HOUR)",
    )
    worker = Worker(quick(mariadb_settings, imports_retention_hours=168, events_retention_hours=168))
    async with worker.lifespan(None):

        async def deleted() -> bool:
            jobs = await mariadb.fetch(mariadb_url, "SELECT id FROM import_jobs ORDER BY id")
            events = await mariadb.fetchval(mariadb_url, "SELECT count(*) FROM developer_events WHERE seq = 1")
            return [row[0] for row in jobs] == [recent] and events == 0

        await until(deleted, "the old job and the old event to be deleted")
