"""Security headers on every answer the service sends: successes, problems, and Litestar's own 404s, 405s and 401s.

Added by the app's one `before_send` hook (service.web.requests.answer_starts) rather than by a middleware:
Litestar runs an app's middleware around each route only, so the 404 and 405 of its router, and the 401 its
authentication middleware raises, never pass through one; every message the app sends passes through its
`before_send` hooks. The header lists are built once, here: per answer they cost a path test, one list, and on
/api a look for a Cache-Control among the route's few headers (about a microsecond in all).

The API answers JSON only, so its answers may load nothing and be framed by nothing. The API document's pages under
/schema (service.web.docs_pages) load everything from the service itself, so their policy names no other origin:
scripts only from the service's own files (no inline script: the pages start their UIs from served scripts), and
requests (the document, the token route, "Try it out") only to the service. Styles too come only from its files,
but for Scalar's page (/schema/scalar): Scalar writes its styles from its script, as `<style>` elements (its Tailwind
sheet, its theme and its toaster's sheet as it starts; CodeMirror's sheet, rewritten as each editor of its API
client mounts) and as `style` attributes in markup it renders. Hashes could allow the first three, not a sheet that
changes with what the reader opens, and no nonce reaches CodeMirror's; so that page alone allows inline styles
(`style-src 'self' 'unsafe-inline'`: a style runs no code; its scripts are held as strictly as Swagger UI's).
"""

from __future__ import annotations

from litestar.types import HTTPResponseStartEvent

_EVERY_ANSWER = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_LOAD_NOTHING = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_DOCS_PAGE = (
    b"default-src 'none'; script-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    b"form-action 'none'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)
_API_DOCUMENT = (b"content-security-policy", _DOCS_PAGE + b"; style-src 'self'")
_SCALAR_PAGE = (b"content-security-policy", _DOCS_PAGE + b"; style-src 'self' 'unsafe-inline'")
_NO_STORE = (b"cache-control", b"no-store")  # answers carry developers, accounts and tokens

API = (*_EVERY_ANSWER, _LOAD_NOTHING, _NO_STORE)
API_CACHE_CONTROL_SET = (*_EVERY_ANSWER, _LOAD_NOTHING)  # the route chose its own Cache-Control
SCHEMA = (*_EVERY_ANSWER, _API_DOCUMENT)
SCALAR = (*_EVERY_ANSWER, _SCALAR_PAGE)
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
    elif path == "/schema/scalar":
        headers.extend(SCALAR)
    elif path == "/schema" or path.startswith("/schema/"):
        headers.extend(SCHEMA)
    else:
        headers.extend(OTHER)
    message["headers"] = headers
    return headers
