"""The accounts domain's routes: sign-in, limited per client address on the token route alone, and the accounts,
with their dependencies (a token issuer signing with the app's own auth)."""

from __future__ import annotations

from litestar import Router
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.security.jwt import OAuth2PasswordBearerAuth, Token

from service.accounts import deps
from service.accounts.auth import Principal, TokenIssuer
from service.accounts.controller import AccessController, UsersController
from service.core.settings import Settings


def router(settings: Settings, auth: OAuth2PasswordBearerAuth[Principal, Token]) -> Router:
    sign_in_limit = RateLimitConfig(rate_limit=("minute", settings.login_attempts_per_minute))
    return Router(
        "/",
        route_handlers=[
            Router("/", route_handlers=[AccessController], middleware=[sign_in_limit.middleware]),
            UsersController,
        ],
        dependencies=deps.dependencies(TokenIssuer(auth)),
    )
