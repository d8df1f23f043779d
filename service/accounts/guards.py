"""Scope guards: Litestar authenticates the token, these decide whether its scopes allow the route (403).

Guards are coroutines because Litestar runs a plain function guard in a worker thread: a thread hop on every
request for a set lookup. Declare them on route handlers, never on a controller or router: a layer's guards
also bind to the OPTIONS handler of each of its paths, which must answer without a token. Each guard states what
it checks as an OpenAPI security requirement (`security`), which the route decorators copy into the API document
(service.web.routes).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import SecurityRequirement

from service.accounts.auth import SCHEME, Principal


class Requires:
    """A guard: the caller's token grants `scope` (else 403; no token at all, 401)."""

    __slots__ = ("scope", "security")

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.security: SecurityRequirement = {SCHEME: [scope]}

    async def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        # No principal means the auth middleware did not run for this request (an excluded path or method):
        # then nobody has been authenticated, which is a 401, not a server error.
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):
            raise NotAuthorizedException(detail="this route needs a bearer token")
        if self.scope not in principal.scopes:
            raise PermissionDeniedException(
                detail=f"this needs the {self.scope!r} scope, which the token does not grant"
            )


READ_DEVELOPERS = Requires("developers:read")
WRITE_DEVELOPERS = Requires("developers:write")
ADMIN_USERS = Requires("users:admin")
