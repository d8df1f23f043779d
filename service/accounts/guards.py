"""Scope guards: Litestar authenticates the token, these decide whether its scopes allow the route (403)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard


def requires(scope: str) -> Guard:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if scope not in connection.user.scopes:
            raise PermissionDeniedException(detail=f"this needs the {scope!r} scope, which the token does not grant")

    guard.__name__ = f"requires_{scope.replace(':', '_')}"
    return guard


READ_DEVELOPERS = requires("developers:read")
WRITE_DEVELOPERS = requires("developers:write")
ADMIN_USERS = requires("users:admin")
