"""Import jobs in the metrics: the API's jobs by status, a worker's job durations and rows, its probe port's
/metrics."""

from __future__ import annotations

import httpx
from litestar import Litestar

from service.app import create_app
from service.core.settings import Settings
from service.imports import health
from service.imports.worker import Worker
from tests.client import serve
from tests.developers.api import people
from tests.imports.api import quick, reset, submitted, until_job
from tests.polling import until
from tests.processes import free_port
from tests.system.scrape import moved, parse, scrape, value

DURATION = "devdir_import_job_duration_seconds_count"
ROWS = "devdir_bulk_rows_total"


async def test_a_job_done_in_process_moves_the_jobs_metrics(settings: Settings, database_url: str) -> None:
    await reset(database_url)
    app: Litestar = create_app(quick(settings))
    try:
        async with serve(app) as client:
            before = await scrape(client)
            job_id = await submitted(client, "csv", people(120))
            done = await until_job(client, job_id)
            assert done["status"] == "succeeded", done
            # The worker records the job's duration once its end has committed: a read of the job may come between.
            after = before

            async def recorded() -> bool:
                nonlocal after
                after = await scrape(client)
                return moved(before, after, DURATION, outcome="succeeded") > 0

            await until(recorded, "the job's duration to be recorded")
            assert value(after, "devdir_import_jobs", status="succeeded") == 1
            assert value(after, "devdir_import_jobs", status="queued") == 0
            assert value(after, "devdir_import_jobs", status="running") == 0
            assert moved(before, after, DURATION, outcome="succeeded") == 1
            assert moved(before, after, DURATION, outcome="failed") == 0
            assert moved(before, after, ROWS, operation="import", on_conflict="error") == 120
            assert value(after, "devdir_import_worker_ready") == 1

            # The worker's probe port serves the same registry.
            server = await health.serve(app.state.worker, free_port(), "127.0.0.1")
            try:
                port = server.sockets[0].getsockname()[1]
                async with httpx.AsyncClient() as probe:
                    response = await probe.get(f"http://127.0.0.1:{port}/metrics")
            finally:
                server.close()
                await server.wait_closed()
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            served = parse(response.text)
            assert value(served, DURATION, outcome="succeeded") == value(after, DURATION, outcome="succeeded")
            assert value(served, ROWS, operation="import", on_conflict="error") == 120
    finally:
        await app.state.feed.engine.dispose()
        await reset(database_url)


async def test_a_worker_process_serves_its_own_metrics_on_its_probe_port(settings: Settings) -> None:
    worker = Worker(settings)  # never run: not ready, no job yet
    server = await health.serve(worker, free_port(), "127.0.0.1")
    try:
        port = server.sockets[0].getsockname()[1]
        async with httpx.AsyncClient() as probe:
            response = await probe.get(f"http://127.0.0.1:{port}/metrics")
            ready = await probe.get(f"http://127.0.0.1:{port}/ready")
    finally:
        server.close()
        await server.wait_closed()
        await worker.engine.dispose()
    assert response.status_code == 200
    assert ready.status_code == 503
    samples = parse(response.text)
    assert value(samples, "devdir_import_worker_ready") == 0
    for outcome in ("succeeded", "failed", "cancelled", "retried"):
        assert (DURATION, frozenset({("outcome", outcome)})) in samples
    assert value(samples, ROWS, operation="import", on_conflict="skip") == 0
    assert not any(name.startswith("devdir_requests") for name, _ in samples)  # the API's, not a worker's
