"""Background imports as tests drive them: submit a body, wait for its job to finish, read jobs and the queue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec

from service.app import create_app
from service.core.settings import Settings
from tests.client import serve, token
from tests.database import empty, queue_tables, run_sql
from tests.developers.api import MEDIA, Person, encode
from tests.polling import until

FINISHED = {"succeeded", "failed", "cancelled"}
WAIT = 60.0  # a deadline for what must happen, never a measurement


def quick(settings: Settings, **overrides: Any) -> Settings:
    """Settings with an in-process worker and short worker timings (and `overrides`)."""
    tuned: dict[str, Any] = {
        "worker_in_process": True,
        "worker_heartbeat_seconds": 1.0,
        "worker_shutdown_seconds": 2.0,
    }
    return msgspec.structs.replace(settings, **(tuned | overrides))


def as_user(role: str, account_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, account_id)}"}  # type: ignore[arg-type]


async def reset(database_url: str) -> None:
    await empty(database_url, "developers", "import_jobs", "import_uploads", *queue_tables(database_url))
    await run_sql(database_url, "DELETE FROM developer_events")


async def submit(
    client: httpx.AsyncClient,
    fmt: str,
    body: bytes | Iterable[Person],
    on_conflict: str | None = None,
    headers: dict[str, str] | None = None,
    route: str = "/api/developers/imports",
) -> httpx.Response:
    """POST the people as `fmt` to `route`: `/api/developers/imports` takes all three formats, `.../imports.ndjson`
    and `.../imports.csv` one each."""
    content = body if isinstance(body, bytes) else encode(fmt, body)
    params = {"on_conflict": on_conflict} if on_conflict else {}
    return await client.post(
        route,
        content=content,
        params=params,
        headers={"content-type": MEDIA[fmt], **(headers or {})},
        timeout=120,
    )


async def submitted(client: httpx.AsyncClient, fmt: str, body: bytes | Iterable[Person], **options: Any) -> int:
    response = await submit(client, fmt, body, **options)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/imports/{job['id']}"
    assert job["status"] == "queued"
    return int(job["id"])


async def job(client: httpx.AsyncClient, job_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/imports/{job_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def until_job(
    client: httpx.AsyncClient, job_id: int, done: Any = lambda j: j["status"] in FINISHED, what: str = "finished"
) -> dict[str, Any]:
    """Poll the job until `done(job)`; fail after WAIT seconds, showing the job as it was last read."""
    current: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal current
        current = await job(client, job_id)
        return bool(done(current))

    await until(reached, lambda: f"job {job_id} to be {what}: {current}", within=WAIT, every=0.05)
    return current


@asynccontextmanager
async def client_of(settings: Settings, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's client of an app built from `settings`, on emptied import tables (emptied again afterwards)."""
    await reset(database_url)
    try:
        async with serve(create_app(settings)) as client:
            yield client
    finally:
        await reset(database_url)
