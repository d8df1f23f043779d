"""The worker's delays, with workers as their own processes: a queued job starts at once on an idle worker,
also one another worker gave back; a dead worker's job is taken again about WORKER_HEARTBEAT_SECONDS after its
last heartbeat. Measured on pgqueuer's own log of the queue entry (the database's clock)."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from tests.database import fetchval
from tests.developers.api import people
from tests.imports.api import submitted, until_job
from tests.imports.faults import hold_row_5000, queue_entry, queue_log, retries
from tests.imports.workers import worker_process
from tests.postgresql_only import PGQUEUER

pytestmark = [pytest.mark.slow, PGQUEUER]

ROWS = 50_000
HEARTBEAT = 2.0  # WORKER_HEARTBEAT_SECONDS of these workers
# Room above each expected delay: the workers poll the queue every second; the rest is for a loaded machine.
SLACK = 5.0


def running(job: dict[str, object]) -> bool:
    return job["status"] == "running" and job["rows_done"] != 0


async def test_an_idle_worker_process_starts_a_queued_job_at_once(idle: httpx.AsyncClient, database_url: str) -> None:
    env = {"WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT), "WORKER_SHUTDOWN_SECONDS": "1"}
    blocker = await hold_row_5000(database_url)
    try:
        async with worker_process(database_url, **env) as busy:
            held = await submitted(idle, "ndjson", people(ROWS))
            await until_job(idle, held, running, "running")
            entry = await queue_entry(database_url, held)
            async with worker_process(database_url, **env) as standby:
                small = await until_job(idle, await submitted(idle, "json", people(3, ROWS)))
                await busy.stop()  # SIGTERM: past WORKER_SHUTDOWN_SECONDS it gives the held job back
                await until_job(idle, held, running, "running again")
                await blocker.rollback()
                done = await until_job(idle, held)
                await standby.logged(held, "succeeded")
    finally:
        await blocker.close()
    waited = (datetime.fromisoformat(small["started_at"]) - datetime.fromisoformat(small["created_at"])).total_seconds()
    given_back = retries(await queue_log(database_url, entry))
    assert small["status"] == "succeeded", small
    assert waited < SLACK, small
    assert [entry[1] for entry in busy.jobs() if entry[0] == held] == ["started", "requeued"]
    assert len(given_back) == 1
    assert given_back[0][1] < SLACK, given_back
    assert done["status"] == "succeeded", done
    assert await fetchval(database_url, "SELECT count(*) FROM developers") == ROWS + 3
    print(
        f"\nsubmitted to an idle worker: started {waited:.3f} s after it was queued; given back by a stopping "
        f"worker: picked again by the idle one {given_back[0][1]:.3f} s later"
    )


async def test_a_dead_workers_job_is_taken_again_a_heartbeat_after_its_last(
    idle: httpx.AsyncClient, database_url: str
) -> None:
    env = {"WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT)}
    blocker = await hold_row_5000(database_url)
    try:
        async with worker_process(database_url, **env) as first:
            job_id = await submitted(idle, "ndjson", people(ROWS))
            await until_job(idle, job_id, running, "running")
            entry = await queue_entry(database_url, job_id)
            async with worker_process(database_url, **env) as second:
                await first.kill()
                last_beat = await fetchval(database_url, f"SELECT heartbeat FROM pgqueuer WHERE id = {entry}")
                await blocker.rollback()
                done = await until_job(idle, job_id)
                await second.logged(job_id, "succeeded")
    finally:
        await blocker.close()
    picks = [line.at for line in await queue_log(database_url, entry) if line.status == "picked"]
    assert len(picks) >= 2, picks
    taken_again = (picks[1] - last_beat).total_seconds()
    assert done["status"] == "succeeded", done
    assert await fetchval(database_url, "SELECT count(*) FROM developers") == ROWS
    assert HEARTBEAT <= taken_again < HEARTBEAT + SLACK, taken_again
    print(f"\nSIGKILLed worker's job taken again {taken_again:.3f} s after its last heartbeat (timeout {HEARTBEAT} s)")
