"""What the service takes as a body: JSON as `application/json`, UTF-8, nested no deeper than the decoder's stack
allows; a form (the token route's) as `application/x-www-form-urlencoded` only.

Any other Content-Type is a 415, checked where Litestar decodes a JSON body, so that every route with one is
covered without a declaration to forget, and no other route pays for the check. A form or plain-text body, which
a browser may send cross-site without asking, never reaches a handler as JSON.

A body that is not valid UTF-8 inside a string, or nests near Python's recursion limit, is answered 400 like any
malformed JSON (service.core.decoding says why those two need catching).

Litestar reads a form body as URL-encoded whatever its Content-Type says, so a JSON body sent to the token route
came out as a form with no fields ("missing username"). `form_only` runs before Litestar reads the body of a route
it is the `before_request` hook of, and answers any other type 415, naming the form's.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ClientException, SerializationException

from service.core.decoding import MALFORMED, NOT_UTF8, TOO_DEEP

MEDIA_TYPE = "application/json"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
UTF8 = frozenset({"utf-8", "utf8"})
# RFC 9110 (15.5.16): a 415 may say which media types the method takes; Accept-Patch is RFC 5789's header for
# PATCH, Accept-Post the Linked Data Platform's for POST.
_ACCEPT = {"PATCH": {"Accept-Patch": MEDIA_TYPE}, "POST": {"Accept-Post": MEDIA_TYPE}}


class JSONBodyRequest(Request[Any, Any, Any]):
    """The request class of every route: Litestar's, with its JSON decoding held to the rules above."""

    async def json(self) -> Any:
        media_type, options = self.content_type
        if media_type != MEDIA_TYPE or options.get("charset", "utf-8").lower() not in UTF8:
            raise ClientException(
                status_code=415,
                detail=f"send the body as {MEDIA_TYPE} (UTF-8), not {self.headers.get('content-type')!r}",
                headers=_ACCEPT.get(self.method, _ACCEPT["POST"]),
            )
        await self.body()  # read first, so that the `try` below holds nothing but the decoding
        try:
            return await super().json()
        # Litestar answers a SerializationException 400, with its message as the detail.
        except UnicodeDecodeError as exc:
            raise SerializationException(f"{MALFORMED}: {NOT_UTF8}") from exc
        except RecursionError as exc:
            raise SerializationException(f"{MALFORMED}: {TOO_DEEP}") from exc


def form_only(request: Request[Any, Any, Any]) -> None:
    """A `before_request` hook: the body must be a URL-encoded form (RFC 6749, section 4.3.2, for the token route)."""
    media_type, _ = request.content_type
    if media_type != FORM_MEDIA_TYPE:
        raise ClientException(
            status_code=415,
            detail=f"send the body as {FORM_MEDIA_TYPE}, not {request.headers.get('content-type')!r}",
            headers={"Accept-Post": FORM_MEDIA_TYPE},
        )
