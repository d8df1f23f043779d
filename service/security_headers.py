"""Security headers on every answer the service sends: successes, problems, and Litestar's own 404s, 405s and 401s.

A `before_send` hook rather than a middleware: Litestar runs an app's middleware around each route only, so the
404 and 405 of its router, and the 401 its authentication middleware raises, never pass through one; every
message the app sends passes through its `before_send` hooks. The header lists are built once, here: per answer
the hook costs a path test, one list, and on /api a look for a Cache-Control among the route's few headers
(about a microsecond in all).

The API answers JSON only, so its pages may load nothing and be framed by nothing. The API document's pages under
/schema load Swagger UI and Scalar (scripts, styles, fonts) from a CDN and run inline scripts; their policy only
forbids framing, `<base>` and plugins, which those pages do not use.
"""

from __future__ import annotations

from litestar.types import Message, Scope

_EVERY_ANSWER = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_LOAD_NOTHING = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_API_DOCUMENT = (b"content-security-policy", b"base-uri 'none'; object-src 'none'; frame-ancestors 'none'")
_NO_STORE = (b"cache-control", b"no-store")  # answers carry developers, accounts and tokens

API = (*_EVERY_ANSWER, _LOAD_NOTHING, _NO_STORE)
API_CACHE_CONTROL_SET = (*_EVERY_ANSWER, _LOAD_NOTHING)  # the route chose its own Cache-Control
SCHEMA = (*_EVERY_ANSWER, _API_DOCUMENT)
OTHER = (*_EVERY_ANSWER, _LOAD_NOTHING)


async def add_security_headers(message: Message, scope: Scope) -> None:
    """Litestar `before_send` hook: the headers above on the start of every HTTP answer."""
    if message["type"] != "http.response.start":
        return
    headers = list(message.get("headers", ()))
    path: str = scope["path"]
    if path.startswith("/api"):
        if any(name.lower() == b"cache-control" for name, _ in headers):
            headers.extend(API_CACHE_CONTROL_SET)
        else:
            headers.extend(API)
    elif path == "/schema" or path.startswith("/schema/"):
        headers.extend(SCHEMA)
    else:
        headers.extend(OTHER)
    message["headers"] = headers
