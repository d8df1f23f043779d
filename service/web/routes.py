"""Route decorators: Litestar's, minus a copy of the route handler on every guarded request.

Litestar runs each guard with `copy(route_handler)`, so that a guard cannot change the handler it guards; a route
handler has some sixty attributes, and the copy is a sizeable part of a hot read
(docs/decisions/0005-guards-without-handler-copy.md). The guards of this service (service.accounts.guards) never
look at the handler, so the handlers made here hand it over as it is; everything else is Litestar's
HTTPRouteHandler. Every route with a guard is declared with these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import ResponseHeader
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler

from service.db.consistency import HEADER


class RouteHandler(HTTPRouteHandler):
    __slots__ = ()

    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        for guard in self.resolve_guards():  # Litestar has made each one a coroutine function
            await guard(connection, self)  # type: ignore[misc]


def get(path: str | Sequence[str] | None = None, **kwargs: Any) -> RouteHandler:
    return RouteHandler(path, http_method=HttpMethod.GET, **kwargs)


def post(path: str | Sequence[str] | None = None, **kwargs: Any) -> RouteHandler:
    return RouteHandler(path, http_method=HttpMethod.POST, **_writes(kwargs))


def patch(path: str | Sequence[str] | None = None, **kwargs: Any) -> RouteHandler:
    return RouteHandler(path, http_method=HttpMethod.PATCH, **_writes(kwargs))


def delete(path: str | Sequence[str] | None = None, **kwargs: Any) -> RouteHandler:
    return RouteHandler(path, http_method=HttpMethod.DELETE, **_writes(kwargs))


# Set by service.web.transaction on a write's 2xx (service.db.consistency); stated here for the API document.
CONSISTENCY_TOKEN = ResponseHeader(
    name=HEADER,
    value="",  # never sent as such (documentation_only): its type is the document's schema, a string
    documentation_only=True,
    required=False,
    description=(
        "Present when the service reads from hot standbys and this request wrote: send it back as the "
        f"`{HEADER}` header of a later read, and that read shows this write (and every earlier one) whichever pod "
        "serves it. Opaque; a value the service did not issue is refused (400)."
    ),
)


def _writes(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**kwargs, "response_headers": [*kwargs.get("response_headers", ()), CONSISTENCY_TOKEN]}
