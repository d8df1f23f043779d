"""Which browser pages may use the API: CORS for the origins CORS_ALLOW_ORIGINS names, and the same rule for the
WebSocket handshake, which CORS does not cover.

CORS is Litestar's own (`CORSConfig`, given to the app): off (no header, no preflight answer) when the setting is
empty. Tokens are bearer tokens a page holds, never cookies, so credentials are not allowed (a page that sends
`credentials: 'include'` is refused by its browser) and `*` is not accepted either: the list names each origin,
and the WebSocket check below reads the same list. With CORS on, every OPTIONS request that carries an `Origin` is
answered by Litestar's CORS layer before routing (204 for an allowed origin, method and headers, else 400), so a
preflight never meets the auth layer and is never 401.

A browser opens a WebSocket to any site without a preflight, and a page could open one with a feed ticket or a
token it was given; the handshake's `Origin` says which page asks. `same_origin_or_allowed` (a guard) refuses, at
the handshake (403), one whose `Origin` is neither the service's own nor in the list; a handshake without
`Origin` comes from no browser and passes (its credential still has to pass).
"""

from __future__ import annotations

from typing import Any

from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from service.core.origins import host_of

METHODS = ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"]  # every method the API's routes answer
# What a page sends (Accept, Accept-Language, Content-Language and Content-Type are allowed by Litestar anyway).
REQUEST_HEADERS = ["Authorization", "Content-Type", "Last-Event-ID", "If-Match", "If-None-Match", "X-Request-ID"]
# What a page may read besides the CORS-safelisted headers: where a new job is, when to retry a 503, the request's
# id to quote in a report, a version tag.
EXPOSED_HEADERS = ["Location", "Retry-After", "X-Request-ID", "ETag"]


def cors_config(origins: tuple[str, ...]) -> CORSConfig | None:
    """Litestar's CORS for `origins` (serialized, service.core.origins); None, no CORS at all, when empty."""
    if not origins:
        return None
    return CORSConfig(
        allow_origins=list(origins),
        allow_methods=METHODS,  # type: ignore[arg-type]  # Litestar types them as its Method literals
        allow_headers=REQUEST_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
    )


def origin_allowed(origin: str, host: str, allowed: tuple[str, ...] | list[str]) -> bool:
    """Whether a page of `origin` may open a WebSocket to a service reached as `host` (the Host header): the
    service's own origin, whatever its scheme (TLS may end at a proxy in front), or one in `allowed`."""
    scheme, separator, rest = origin.partition("://")
    return origin in allowed or (bool(separator) and bool(host) and rest == host_of(host, scheme))


async def same_origin_or_allowed(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A WebSocket route's guard: refuse (403 at the handshake) a browser page of another origin than the
    service's own or CORS_ALLOW_ORIGINS' (the app's CORS configuration)."""
    origin = connection.headers.get("origin")
    if origin is None:
        return
    cors = connection.app.cors_config
    allowed = cors.allow_origins if cors is not None else ()
    if not origin_allowed(origin, connection.headers.get("host", ""), allowed):
        raise PermissionDeniedException(detail="a page of this origin may not open this WebSocket")
