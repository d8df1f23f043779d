"""Conditional requests (RFC 9110 section 13): reading entity-tag lists, and a JSON answer with its validator.

`If-None-Match` is judged here with the weak comparison (a `W/` prefix on either side is ignored), as RFC 9110
13.1.2 says for GET; `*` matches any current representation. `If-Match` uses the strong comparison, so only
`strong_tags` feeds it (a `W/` tag never matches). A tag is `"..."` with an optional `W/`; members of a list are
separated by commas. What is not a tag in a header is skipped, so a malformed header matches nothing and is never
an error. The header values are the client's: they are read here and never echoed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import MediaType
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Schema,
)
from litestar.response.base import ASGIResponse
from litestar.types import Scope

ANY = "*"
# RFC 9110 entity-tag: [W/] DQUOTE *etagc DQUOTE, etagc being any visible character but DQUOTE (and obs-text).
_TAG = re.compile(r'(W/)?("[\x21\x23-\x7e\x80-\xff]*")')


def is_any(header: str) -> bool:
    return header.strip() == ANY


def strong_tags(header: str) -> list[str]:
    """The strong entity-tags of an `If-Match` list, quotes included (weak ones can never match it)."""
    return [match[2] for match in _TAG.finditer(header) if match[1] is None]


def none_match(header: str, etag: str) -> bool:
    """Whether `If-None-Match: header` matches the current representation's `etag`: weak comparison."""
    if is_any(header):
        return True
    opaque = etag.removeprefix("W/")
    return any(match[2] == opaque for match in _TAG.finditer(header))


def if_none_match(scope: Scope) -> str | None:
    """The request's `If-None-Match`, read from the ASGI scope as it is: on the hot reads this costs a scan of a
    few header names, where a declared header parameter of Litestar's cost about 4% of the service's CPU time per
    GET by id (docs/benchmarks.md). (Several fields of the header would make one list; clients send one.)"""
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            return value.decode("latin-1")
    return None


# A validated read may be kept by the client's own cache (a browser's included), never by a shared one, and is
# revalidated before each use: the browser then sends `If-None-Match` by itself and gets a 304 while the data is
# unchanged. (Every other /api answer is `no-store`: service.web.security_headers.)
REVALIDATE = "private, no-cache"


_REVALIDATE = (b"cache-control", REVALIDATE.encode())
_JSON = (b"content-type", MediaType.JSON.value.encode())


class JSONAnswer(ASGIResponse):
    """Litestar's ASGI response, given its headers already encoded: its own constructor adds each header through
    a header map, which cost a hot read more than all of its validator's work (docs/benchmarks.md)."""

    __slots__ = ()

    def __init__(self, status_code: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers = MutableScopeHeaders({"headers": headers})
        self.status_code = status_code
        self.body = body
        self.content_length = len(body)
        self.background = None
        self._encoded_cookies = ()
        self.encoding = "utf-8"
        self.is_head_response = False


def json_answer(body: bytes, etag: str, if_none_match: str | None) -> ASGIResponse:
    """An answer whose body is JSON already, with its `ETag` and `Cache-Control: private, no-cache`; 304 without the
    body (and the same two headers, RFC 9110 15.4.5) when `If-None-Match` matches.

    The bytes go out as they are, without the Response object Litestar would otherwise build and convert for them
    (about a tenth of a hot read's time in the service).
    """
    validator = (b"etag", etag.encode())
    if if_none_match is not None and none_match(if_none_match, etag):
        return JSONAnswer(304, b"", [validator, _REVALIDATE])
    return JSONAnswer(200, body, [_JSON, (b"content-length", b"%d" % len(body)), validator, _REVALIDATE])


@dataclass
class ValidatedOperation(Operation):
    """The API document's operation of a route whose answers carry an `ETag`: its 200, 201 and 304 say so.
    (Litestar's `response_headers` miss a 200 declared in `responses`, as a route answering raw bytes declares it.)"""

    def __post_init__(self) -> None:
        self.add_etags()

    def add_etags(self) -> None:
        for status, response in (self.responses or {}).items():
            if status in {"200", "201", "304"} and isinstance(response, OpenAPIResponse):
                etag = OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.STRING),
                    required=True,
                    description="The validator of the developer, or of the page, as this answer shows it.",
                )
                response.headers = (response.headers or {}) | {"ETag": etag}


@dataclass
class ConditionalReadOperation(ValidatedOperation):
    """A read that answers an `ETag` and takes `If-None-Match`, which its handler reads with `if_none_match`
    rather than as a declared parameter: the document declares it here."""

    def __post_init__(self) -> None:
        self.add_etags()
        header = Parameter(
            name="If-None-Match",
            param_in="header",
            required=False,
            schema=Schema(type=OpenAPIType.STRING),
            description="ETags the client holds (or `*`): 304 without a body if one matches (weak comparison).",
        )
        self.parameters = [*(self.parameters or []), header]
