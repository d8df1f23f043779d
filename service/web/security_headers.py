"""Security headers on every answer the service sends: successes, problems, and Litestar's own 404s, 405s and 401s.

Added by the app's one `before_send` hook (service.web.requests.answer_starts) rather than by a middleware:
Litestar runs an app's middleware around each route only, so the 404 and 405 of its router, and the 401 its
authentication middleware raises, never pass through one; every message the app sends passes through its
`before_send` hooks. The header lists are built once, here: per answer they cost a path test, one list, and on
/api a look for a Cache-Control among the route's few headers (about a microsecond in all).

The API answers JSON only, so its pages may load nothing and be framed by nothing. The API document's pages under
/schema load Swagger UI and Scalar (scripts, styles, fonts) from a CDN and run inline scripts; their policy only
forbids framing, `<base>` and plugins, which those pages do not use.
"""

from __future__ import annotations

from litestar.types import HTTPResponseStartEvent

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


def secure(message: HTTPResponseStartEvent, path: str) -> list[tuple[bytes, bytes]]:
    """The headers of an answer's start `message` (sent to a request for `path`) with those above added, as the new
    list that `message` then carries; the caller may add more to it."""
    headers = list(message.get("headers", ()))
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
    return headers
