"""Streamed request bodies, as the routes that read them piece by piece (bulk import, import submission) need:
the media type checked against what they accept (415), and the body's pieces with HTTP's failures named (413, a
client gone mid-body)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.exceptions import ClientException, InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge


def media_type(request: Request[Any, Any, Any], accepted: tuple[str, ...]) -> str:
    """The body's media type, if it is one of `accepted` in UTF-8; 415 otherwise (with `Accept-Post`)."""
    media, options = request.content_type
    if media not in accepted or options.get("charset", "utf-8").lower() not in {"utf-8", "utf8"}:
        raise ClientException(
            status_code=415,
            detail=f"send the rows as {', '.join(accepted)} (UTF-8), not {request.headers.get('content-type')!r}",
            headers={"Accept-Post": ", ".join(accepted)},
        )
    return media


async def pieces(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    """The body as it arrives; 413 past the route's request_max_body_size (BULK_MAX_BYTES), 400 if the client
    goes away before its end."""
    try:
        async for data in request.stream():
            if data:
                yield data
    except RequestEntityTooLarge as exc:
        limit = request.route_handler.resolve_request_max_body_size()
        raise RequestEntityTooLarge(
            detail=f"the body is larger than {limit} bytes (BULK_MAX_BYTES); send it in parts"
        ) from exc
    except InternalServerException as exc:  # Litestar's way of saying http.disconnect came before the end
        raise ClientException(detail="the client disconnected before the body ended; nothing was written") from exc
