"""OPTIONS on every route: 204, every method of the path in `Allow`, no token needed."""

from __future__ import annotations

import httpx
from litestar import Litestar, Router, delete, get, post
from litestar.params import FromPath
from litestar.routes import HTTPRoute

from service.accounts.guards import READ_DEVELOPERS, WRITE_DEVELOPERS
from service.web.controller import Controller
from tests.client import serve

# Paths whose handlers come from one controller but several methods (or two controllers under one prefix).
EXPECTED_ALLOW = {
    "/api/developers": "GET, OPTIONS, PATCH, POST",
    "/api/developers/1": "DELETE, GET, OPTIONS, PATCH",
    "/api/developers/bulk": "OPTIONS, POST",
    "/api/developers/bulk-delete": "OPTIONS, POST",
    "/api/users": "GET, OPTIONS, POST",
    "/api/users/1": "DELETE, OPTIONS, PATCH",
}


def concrete(route: HTTPRoute) -> str:
    """A URL that the route matches: its path with a value of the right type for each parameter."""
    # Ids are read from `str` path segments (service.web.path_ids), so they are told by name.
    values = {name: "1" if p.type is int or name.endswith("_id") else "x" for name, p in route.path_parameters.items()}
    return route.path_format.format(**values)


async def test_every_route_answers_options_without_a_token(app: Litestar) -> None:
    routes = [route for route in app.routes if isinstance(route, HTTPRoute)]
    assert {concrete(route) for route in routes} >= set(EXPECTED_ALLOW)
    async with serve(app, bearer=None) as client:
        for route in routes:
            url = concrete(route)
            response = await client.options(url)
            assert response.status_code == 204, (url, response.text)
            allowed = response.headers["allow"]
            assert allowed == ", ".join(sorted(route.methods)), url
            assert allowed == EXPECTED_ALLOW.get(url, allowed), url
            assert response.content == b""


async def test_options_ignores_a_bad_token(app: Litestar) -> None:
    async with serve(app, bearer=None) as client:
        response = await client.options("/api/developers/bulk", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 204
    assert response.headers["allow"] == "OPTIONS, POST"


class Reading(Controller):
    path = "/things"

    @get(sync_to_thread=False, guards=[READ_DEVELOPERS])
    def list_things(self) -> list[str]:
        return []

    @get("/{thing_id:int}", sync_to_thread=False, guards=[READ_DEVELOPERS])
    def get_thing(self, thing_id: FromPath[int]) -> str:
        return str(thing_id)


class Writing(Controller):
    path = "/things"

    @post(sync_to_thread=False, guards=[WRITE_DEVELOPERS])
    def add_thing(self) -> str:
        return "added"

    @delete("/{thing_id:int}", sync_to_thread=False, guards=[WRITE_DEVELOPERS])
    def remove_thing(self, thing_id: FromPath[int]) -> None:
        return None


async def test_controllers_sharing_a_path_answer_with_all_its_methods() -> None:
    # In one Router, as app.py mounts the developers' two controllers.
    app = Litestar([Router("/", route_handlers=[Reading, Writing])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        collection = await client.options("/things")
        item = await client.options("/things/7")
    assert (collection.status_code, collection.headers["allow"]) == (204, "GET, OPTIONS, POST")
    assert (item.status_code, item.headers["allow"]) == (204, "DELETE, GET, OPTIONS")
