"""Every route of the app, driven once or more over a real socket, for the pooler guard (tests/db/test_pooler_guard.py):
the routes it reached are recorded, so that a route added without being driven here fails the guard.

`drive` leaves import jobs queued (one of them with no queue entry, for the scheduler's sweep to find) and runs
none: the guard runs a worker of its own afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from litestar import Litestar
from litestar.routes import HTTPRoute, WebSocketRoute

from tests.accounts.api import account, sign_in
from tests.database import run_sql
from tests.developers.api import MEDIA, ROUTES, encode, people
from tests.developers.feed_client import Running, receive, socket, sse, ticket
from tests.imports.api import submitted

Reached = set[tuple[str, str]]  # (path template, method), "websocket" for a WebSocket route
_ASSET = re.compile(r"""(?:src|href)="(/schema/assets/[^"]+)\"""")


def routes(app: Litestar) -> Reached:
    """Every (path template, method) the app routes, OPTIONS and HEAD included."""
    found: Reached = set()
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            found |= {(route.path_format, method) for method in route.methods}
        elif isinstance(route, WebSocketRoute):
            found.add((route.path_format, "websocket"))
        else:  # a mounted app: the API document's static assets
            found |= {(route.path_format, method) for method in route.methods}
    return found


def record_routes(app: Litestar) -> Reached:
    """The set the app adds each request's (path template, method) to, once routed."""
    reached: Reached = set()
    inner = app.asgi_handler

    async def observed(scope: Any, receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        try:
            await inner(scope, receive, send)
        finally:
            if "path_template" in scope:
                reached.add((scope["path_template"], scope.get("method", "websocket")))

    app.asgi_handler = observed
    return reached


async def drive(run: Running) -> list[int]:
    """Each route, as a client uses it; the import jobs submitted and left queued."""
    api = run.api
    await system(api)
    await accounts(api)
    async with sse(run) as stream, socket(run, f"ticket={await ticket(run)}", headers={}) as ws:
        await developers(api)
        assert (await stream.event())["op"] == "created"
        assert (await receive(ws))["op"] in ("created", "subscribed")
    await bulk(api)
    jobs = await imports(api, run.database_url)
    await documents(api)
    await preflights(run.app, api)
    return jobs


def ok(response: httpx.Response, *statuses: int) -> httpx.Response:
    assert response.status_code in (statuses or (200,)), f"{response.request.url}: {response.text[:500]}"
    return response


async def system(api: httpx.AsyncClient) -> None:
    for path in ("/health", "/ready", "/metrics"):
        ok(await api.get(path))


async def accounts(api: httpx.AsyncClient) -> None:
    editor = await account(api, "editor@guard.io", "editor")
    ok(await api.get("/api/users"))
    signed = ok(await sign_in(api, "editor@guard.io")).json()["access_token"]
    ok(await api.get("/api/users/me", headers={"Authorization": f"Bearer {signed}"}))
    ok(await api.patch(f"/api/users/{editor['id']}", json={"role": "viewer"}))
    ok(await api.delete(f"/api/users/{editor['id']}"), 204)


async def developers(api: httpx.AsyncClient) -> None:
    created = ok(
        await api.post("/api/developers", json={"name": "Ada", "email": "ada@guard.io", "specialty": "c"}), 201
    )
    one = f"/api/developers/{created.json()['id']}"
    fetched = ok(await api.get(one))
    ok(await api.get(one, headers={"If-None-Match": fetched.headers["etag"]}), 304)
    patched = ok(await api.patch(one, json={"name": "Ada L"}, headers={"If-Match": fetched.headers["etag"]}))
    ok(await api.patch(one, json={"name": "Stale"}, headers={"If-Match": fetched.headers["etag"]}), 412)
    ok(await api.post("/api/developers", json={"name": "Bob", "email": "bob@guard.io", "specialty": "go"}), 201)
    page = ok(await api.get("/api/developers", params={"limit": 1})).json()
    ok(await api.get("/api/developers", params={"limit": 1, "cursor": page["next_cursor"]}))
    ok(await api.get("/api/developers", params={"specialty": "go"}))
    ok(await api.delete(one, headers={"If-Match": patched.headers["etag"]}), 204)


async def bulk(api: httpx.AsyncClient) -> None:
    for fmt, on_conflict in (("json", "error"), ("ndjson", "skip"), ("csv", "update")):
        body = encode(fmt, people(3, specialty=fmt))
        answer = await api.post(ROUTES[fmt], content=body, params={"on_conflict": on_conflict}, headers=_media(fmt))
        ok(answer, 200, 201)
    conflict = encode("json", people(1))
    ok(await api.post("/api/developers/bulk", content=conflict, headers=_media("json")), 409)
    listed = ok(await api.get("/api/developers", params={"limit": 3})).json()["items"]
    ids = [item["id"] for item in listed]
    ok(await api.patch("/api/developers", json=[{"id": i, "specialty": "batched"} for i in ids]))
    ok(await api.post("/api/developers/bulk-delete", json={"ids": ids[:2]}))
    for fmt in ("csv", "ndjson"):
        assert ok(await api.get("/api/developers/export", params={"format": fmt})).content


async def imports(api: httpx.AsyncClient, database_url: str) -> list[int]:
    jobs = [
        await submitted(api, "json", people(4, start=100)),
        await submitted(api, "ndjson", people(4, start=200), on_conflict="skip", route=f"{SUBMIT}.ndjson"),
        await submitted(api, "csv", people(4, start=300), on_conflict="update", route=f"{SUBMIT}.csv"),
    ]
    cancelled = await submitted(api, "json", people(2, start=400))
    assert ok(await api.delete(f"/api/imports/{cancelled}")).json()["status"] == "cancelled"
    ok(await api.get("/api/imports"))
    ok(await api.get(f"/api/imports/{jobs[0]}"))
    # The last job loses its queue entry: the scheduler's sweep (requeue_orphaned_jobs) queues it again.
    await run_sql(database_url, f"DELETE FROM pgqueuer WHERE payload = convert_to('{jobs[-1]}', 'UTF8')")
    return jobs


async def documents(api: httpx.AsyncClient) -> None:
    ok(await api.get("/schema/openapi.json"))
    ok(await api.get("/schema/openapi.yaml"), 200, 404)  # /schema/{path}: only the pages the app serves
    for page in ("/schema", "/schema/swagger", "/schema/scalar"):
        html = ok(await api.get(page)).text
        for asset in _ASSET.findall(html):
            ok(await api.get(asset))
            ok(await api.head(asset))


async def preflights(app: Litestar, api: httpx.AsyncClient) -> None:
    """OPTIONS on every HTTP route (Litestar answers it; the guard counts it as a route like any other)."""
    for path, method in routes(app):
        if method == "OPTIONS":
            concrete = re.sub(r"\{[^}]+\}", "1", path.replace("{file_path}", "pages/x"))
            ok(await api.options(concrete), 200, 204, 404)


SUBMIT = "/api/developers/imports"  # and each streamed format's own route


def _media(fmt: str) -> dict[str, str]:
    return {"content-type": MEDIA[fmt]}
