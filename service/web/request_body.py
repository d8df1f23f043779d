"""Streamed request bodies, as the routes that read them piece by piece (bulk import, import submission) need:
the media type checked against what they accept (415), the body's pieces with its size limit named (413), and
how many such uploads a process takes at once (503).

Each of these uploads holds a connection of the request pool, in an open transaction, for as long as its body
takes to arrive (service.web.body_timeout bounds how long that may be). At most BULK_MAX_CONCURRENT of them run at
once per process, so uploads can never take every connection from the other requests; one more is answered 503
with Retry-After before it reads its body or takes a connection. A slot is given back when the handler ends,
right before its transaction commits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from service.core.errors import DomainError
from service.web.problems import problem_response

TOO_LARGE = {413: problem_response("More rows than BULK_MAX_ROWS, or a body larger than BULK_MAX_BYTES.")}
# What the routes that stream an upload (this import, and the import submission) answer beyond COMMON_RESPONSES.
STREAMED = TOO_LARGE | {
    408: problem_response(
        "The body stalled for BODY_IDLE_TIMEOUT_SECONDS, or arrived slower than BODY_MIN_BYTES_PER_SECOND; "
        "nothing was written."
    ),
    503: problem_response(
        "BULK_MAX_CONCURRENT uploads are streaming to this server already, no database connection came free "
        "within DB_POOL_TIMEOUT, or the database is down (or ended the upload's session); retry after the "
        "`Retry-After` seconds."
    ),
}


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
    """The body as it arrives; 413 past the route's request_max_body_size (BULK_MAX_BYTES). (A body that stalls,
    trickles or ends early is answered by service.web.body_timeout, under every route.)"""
    try:
        async for data in request.stream():
            if data:
                yield data
    except RequestEntityTooLarge as exc:
        limit = request.route_handler.resolve_request_max_body_size()
        raise RequestEntityTooLarge(
            detail=f"the body is larger than {limit} bytes (BULK_MAX_BYTES); send it in parts"
        ) from exc


class UploadsBusy(DomainError):
    """As many streamed uploads as this process allows are running (503, with Retry-After like every 503)."""

    status = 503

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"{limit} uploads are streaming to this server already (BULK_MAX_CONCURRENT); retry shortly, "
            "nothing was read"
        )


class StreamedUploads:
    """The streamed uploads of one process, at most `limit` at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Held for the whole upload; UploadsBusy when every slot is taken."""
        if self.running >= self.limit:
            raise UploadsBusy(self.limit)
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1

    def dependency(self) -> Provide:
        """This object, as the `streamed_uploads` dependency: one per process, whose count is the limit."""

        def provide_streamed_uploads() -> StreamedUploads:
            return self

        return Provide(provide_streamed_uploads, use_cache=True, sync_to_thread=False)


StreamedUploadsDep = NamedDependency[StreamedUploads]
