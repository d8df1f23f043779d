"""The service as a test talks to it: an in-process HTTP client, bearer tokens, and RFC 9457 problem answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from litestar import Litestar

from service.accounts.auth import TokenIssuer, build_auth
from service.core.settings import Settings
from service.db.models import Role

TEST_SECRET = "a-test-signing-key-of-forty-characters!!"


def token(role: Role = "admin", account_id: int = 0, secret: str = TEST_SECRET) -> str:
    """A bearer token as the service issues it (no account behind it unless `account_id` names one), valid for a
    day: modules issue theirs as they are imported, and a whole run on a busy machine lasts longer than the
    service's 15 minutes."""
    return TokenIssuer(build_auth(Settings(secret_key=secret, access_token_minutes=24 * 60))).issue(account_id, role)


@asynccontextmanager
async def serve(app: Litestar, bearer: str | None = "admin") -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `app`, run with its lifespan in the test's own event loop, as a server runs it.

    It sends an admin's token (all scopes) unless `bearer` is another role, or None for no token at all.

    (Litestar's AsyncTestClient runs the app in a second loop, where a connection held by the test is unusable.)
    """
    started, stop = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:
        # Entered and left in one task: anyio's cancel scopes inside the lifespan demand it, and pytest-asyncio
        # runs a fixture's setup and teardown in different tasks.
        async with app.lifespan():
            started.set()
            await stop.wait()

    lifespan = asyncio.create_task(run_lifespan())
    await asyncio.wait([lifespan, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if lifespan.done():
        lifespan.result()  # startup failed: raise its error here
    try:
        headers = {"Authorization": f"Bearer {token(bearer)}"} if bearer else {}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as client:
            yield client
    finally:
        stop.set()
        await lifespan


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """`response` is an RFC 9457 problem with this status; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = dict(response.json())
    assert body["status"] == status
    assert body["title"]
    return body
