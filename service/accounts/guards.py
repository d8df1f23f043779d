"""Scope guards: Litestar authenticates the token, these decide whether its scopes allow the route (403).

Guards are coroutines because Litestar runs a plain function guard in a worker thread: a thread hop on every
request for a set lookup. Declare them on route handlers, never on a controller or router: a layer's guards
also bind to the OPTIONS handler of each of its paths, which must answer without a token.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from service.accounts.auth import Principal


def requires(scope: str) -> Guard:
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        # No principal means the auth middleware did not run for this request (an excluded path or method):
        # then nobody has been authenticated, which is a 401, not a server error.
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):
            raise NotAuthorizedException(detail="this route needs a bearer token")
        if scope not in principal.scopes:
            raise PermissionDeniedException(detail=f"this needs the {scope!r} scope, which the token does not grant")

    guard.__name__ = f"requires_{scope.replace(':', '_')}"
    return guard


READ_DEVELOPERS = requires("developers:read")
WRITE_DEVELOPERS = requires("developers:write")
ADMIN_USERS = requires("users:admin")
