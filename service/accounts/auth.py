"""Bearer tokens with Litestar's OAuth2PasswordBearerAuth: who may call what, decided from the token alone.

A token carries its subject (the account id) and the scopes of the account's role, signed with SECRET_KEY.
Authenticating a request is checking that signature and expiry: no database round trip. The price: a token
stays valid until it expires (ACCESS_TOKEN_MINUTES) even if its account is deactivated or changes role.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import timedelta
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AuthenticationResult
from litestar.security.jwt import JWTAuthenticationMiddleware, OAuth2PasswordBearerAuth, Token

from service.accounts.tickets import AUDIENCE, QUERY, TICKET_OPT, FeedTickets
from service.core.settings import Settings
from service.core.validation import ID_MAX
from service.db.models import Role

TOKEN_URL = "/api/access/token"  # noqa: S105 (a path, not a password); the sign-in route is served here
SCHEME = "BearerToken"  # the security scheme's name in the API document

SCOPES = {
    "developers:read": "Read developers.",
    "developers:write": "Add, change and remove developers, one by one or in bulk.",
    "users:admin": "Manage accounts.",
}
ROLE_SCOPES: dict[Role, tuple[str, ...]] = {
    "viewer": ("developers:read",),
    "editor": ("developers:read", "developers:write"),
    "admin": ("developers:read", "developers:write", "users:admin"),
}


class Principal(msgspec.Struct, frozen=True):
    """The caller, as its verified token describes it (`request.user`)."""

    id: int
    scopes: frozenset[str]

    @property
    def sees_owner(self) -> int | None:
        """Whose records (import jobs, and their `import.*` events) the caller may read: its own (its account
        id), or everyone's (None) for an admin. The one rule for the jobs routes and the change feed."""
        return None if "users:admin" in self.scopes else self.id


_MAX_DIGITS = len(str(ID_MAX))


async def retrieve_principal(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The caller a bearer token names (see `principal_of`); None, and Litestar answers 401."""
    return principal_of(token, audience=None)  # this service's tokens name no audience; a feed ticket names its own


def principal_of(token: Token, audience: str | None) -> Principal | None:
    """The caller, if the token is for `audience` and its subject is an account id as this service writes one
    (ASCII digits, at most ID_MAX: a larger one would reach PostgreSQL as an integer out of bigint's range) with a
    list of scopes; else None."""
    subject, scopes = token.sub, token.extras.get("scopes", ())
    if token.aud != audience:
        return None
    if not (subject.isascii() and subject.isdigit() and len(subject) <= _MAX_DIGITS and int(subject) <= ID_MAX):
        return None
    if not isinstance(scopes, list | tuple) or not all(isinstance(scope, str) for scope in scopes):
        return None
    return Principal(id=int(subject), scopes=frozenset(scopes))


class VerifiedTokenCache(JWTAuthenticationMiddleware):
    """Litestar's JWT middleware, remembering the tokens it has verified until they expire.

    It reads the token from the Authorization header only, and only with the Bearer scheme (RFC 6750; the scheme's
    name in any case, RFC 7235): Litestar's own reading takes whatever follows the first space, so `Token <jwt>`
    or `Basic <jwt>` passed as Bearer. OAuth2PasswordBearerAuth's own middleware also takes one from a cookie,
    which a browser sends by itself on cross-site requests; the cookie's name it passes here is ignored. A
    WebSocket handshake without the header may offer the token as its second subprotocol (`Sec-WebSocket-Protocol:
    bearer, <token>`), the one header a browser's WebSocket lets a page set; a page cannot make another site's
    page send it, unlike a cookie.

    A client sends the same token with every request for its whole lifetime, and checking the signature and
    decoding the claims is most of what the auth layer costs per request. The cache is keyed by the whole
    encoded token, signature included, so only a byte-identical token that was verified before is served from
    it, and never after its `exp`. Bounded: the oldest entries go first.

    On a route declared with `opt={TICKET_OPT: True}` (the change feed's), a `?ticket=` takes the token's place
    (service.accounts.tickets); it is checked as each stream starts, never cached, and a request that brings
    both a ticket and a token is refused (401, as any request whose credentials do not authenticate it): the two
    could name different accounts, and the service does not pick one.
    """

    __slots__ = ("_tickets", "_verified")
    SIZE = 4096

    def __init__(self, *args: Any, auth_cookie_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._verified: OrderedDict[str, tuple[float, AuthenticationResult]] = OrderedDict()
        self._tickets = FeedTickets(self.token_secret)

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get(self.auth_header)
        if connection.route_handler.opt.get(TICKET_OPT) and (ticket := connection.query_params.get(QUERY)) is not None:
            return self._ticketed(ticket, connection, has_token=bool(header))
        if connection.scope["type"] == ScopeType.WEBSOCKET and not header:
            offered = [p.strip() for p in connection.headers.get("sec-websocket-protocol", "").split(",")]
            if len(offered) == 2 and offered[0] == "bearer" and offered[1]:
                return await self.authenticate_token(offered[1], connection)
        if not header:
            raise NotAuthorizedException("No JWT token found in request header")
        scheme, _, credentials = header.partition(" ")
        encoded_token = credentials.lstrip(" ")  # `credentials = auth-scheme [ 1*SP token68 ]`
        if scheme.lower() != "bearer" or not encoded_token:
            raise NotAuthorizedException("the Authorization header must use the Bearer scheme")
        return await self.authenticate_token(encoded_token, connection)

    def _ticketed(
        self, ticket: str, connection: ASGIConnection[Any, Any, Any, Any], *, has_token: bool
    ) -> AuthenticationResult:
        offered = connection.headers.get("sec-websocket-protocol", "")
        if has_token or offered.partition(",")[0].strip() == "bearer":
            raise NotAuthorizedException("send either a ticket or a bearer token, not both")
        claims = self._tickets.check(ticket)
        principal = principal_of(claims, audience=AUDIENCE)
        if principal is None:
            raise NotAuthorizedException("the ticket is invalid or expired; get a new one")
        return AuthenticationResult(user=principal, auth=claims)

    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        hit = self._verified.get(encoded_token)
        if hit is not None and hit[0] > time.time():
            return hit[1]
        result = await super().authenticate_token(encoded_token, connection)
        self._verified[encoded_token] = (result.auth.exp.timestamp(), result)
        if len(self._verified) > self.SIZE:
            self._verified.popitem(last=False)
        return result


def build_auth(settings: Settings) -> OAuth2PasswordBearerAuth[Principal, Token]:
    """Every route needs a token but those that opt out with `exclude_from_auth=True` in their own declaration:
    the probes, the API document and the token route."""
    return OAuth2PasswordBearerAuth[Principal, Token](
        token_secret=settings.secret_key,
        token_url=TOKEN_URL,
        retrieve_user_handler=retrieve_principal,
        default_token_expiration=timedelta(minutes=settings.access_token_minutes),
        oauth_scopes=SCOPES,
        openapi_security_scheme_name=SCHEME,
        description="Sign in at the token URL with an account's email and password (OAuth2 password flow).",
        # Typed as the cookie middleware's subclass; this one takes the same arguments and reads the header only.
        authentication_middleware_class=VerifiedTokenCache,  # type: ignore[arg-type]
    )


class TokenIssuer:
    """Signs access tokens for accounts (the `token_issuer` dependency)."""

    def __init__(self, auth: OAuth2PasswordBearerAuth[Principal, Token]) -> None:
        self._auth = auth
        self.expires_in = int(auth.default_token_expiration.total_seconds())

    def issue(self, account_id: int, role: Role) -> str:
        return self._auth.create_token(identifier=str(account_id), token_extras={"scopes": list(ROLE_SCOPES[role])})
