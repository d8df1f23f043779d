"""The service with its token check replaced by a fixed all-scopes caller: the same app, routes, guards and
plugins, minus the JWT verification, so the read benchmark can price the auth layer.

    granian --interface asgi tests.bench.noauth_app:app     (DATABASE_URL and SECRET_KEY from the environment)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar.middleware import DefineMiddleware
from litestar.security.jwt import OAuth2PasswordBearerAuth, Token
from litestar.types import ASGIApp, Receive, Scope, Send

import service.app
from service.accounts.auth import ROLE_SCOPES, Principal, build_auth
from service.core.settings import Settings

EVERYONE = Principal(id=0, scopes=frozenset(ROLE_SCOPES["admin"]))


class FixedCaller:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["user"] = EVERYONE
        await self.app(scope, receive, send)


class FixedCallerAuth(OAuth2PasswordBearerAuth[Principal, Token]):
    @property
    def middleware(self) -> DefineMiddleware:
        return DefineMiddleware(FixedCaller)


def _without_token_check(settings: Settings) -> FixedCallerAuth:
    real = build_auth(settings)
    return FixedCallerAuth(**{f.name: getattr(real, f.name) for f in dataclasses.fields(real) if f.init})


service.app.build_auth = _without_token_check  # type: ignore[assignment]
app: Any = service.app.create_app()
