"""The export route: its parameters and errors, and the streaming answer that owns the export's connection.

Everything that can fail before the first byte (parameters, the concurrency limit, the pool, the snapshot) fails
in the handler, as an RFC 9457 problem. Once rows flow, an error can only cut the stream: the answer then ends
without HTTP's end of body (chunked encoding's last chunk), which every client reports as an incomplete
answer, and the error is logged. The export's connection is given back when the last row has gone out, when the
client leaves, or when the stream fails, whichever comes first (ExportStream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated, Any

from litestar import Request
from litestar.exceptions import ValidationException
from litestar.openapi.spec import OpenAPIResponse
from litestar.params import Parameter
from litestar.response.base import ASGIResponse
from litestar.types import HTTPResponseBodyEvent, Receive, Scope, Send

from service.accounts.guards import READ_DEVELOPERS
from service.core.limits import SPECIALTY_MAX
from service.core.validation import TEXT_PATTERN
from service.developers.deps import DeveloperExportsDep, SettingsDep
from service.developers.export.streams import Format, Stream
from service.developers.formats import documented
from service.web.consistency import ReadNeedDep
from service.web.controller import Controller
from service.web.openapi import streamed
from service.web.problems import COMMON_RESPONSES, problem_response
from service.web.routes import get

logger = logging.getLogger("service.developers.export")

PARAMETERS = frozenset({"format", "specialty"})
# asyncpg hands over a COPY's output in pieces of about 10 KB; sending each as it comes would cost a send, and a
# chunk of HTTP framing, per piece. They are gathered up to this size first (a bounded buffer: one piece more).
SEND_AT = 64 * 1024
EXPORT_RESPONSES = COMMON_RESPONSES | {
    503: problem_response(
        "EXPORT_MAX_CONCURRENT exports are running in this process already, or no database connection came free "
        "within DB_POOL_TIMEOUT, or the database is down; retry after the `Retry-After` seconds."
    )
}


# The 200 answer is one of two streamed formats, which Litestar cannot infer from a raw ASGI answer.
EXPORT_ANSWER = OpenAPIResponse(
    description=(
        "Every matching developer, streamed, from one snapshot: CSV (a header row, then one developer a "
        "row, RFC 4180 quoting) or NDJSON (one object a line), exactly what the bulk import takes."
    ),
    headers=None,
    content=documented("text/csv", "application/x-ndjson"),
)


class DevelopersExportController(Controller):
    path = "/api/developers/export"
    tags = ["developers"]

    @get(
        summary="Export every developer, or one specialty's, as CSV or NDJSON, from one snapshot",
        description=(
            "The rows of one consistent snapshot, however long the export takes and whatever is written meanwhile, "
            "streamed as PostgreSQL produces them, in `id` order. The body is what `POST /api/developers/bulk.csv` "
            "(or `.ndjson`) takes. A stream that ends without HTTP's end of body (an incomplete chunked "
            "answer) failed part-way: export again. Unknown parameters are refused (400)."
        ),
        operation_class=streamed(answer=EXPORT_ANSWER),
        guards=[READ_DEVELOPERS],
        responses=EXPORT_RESPONSES,
    )
    async def export_developers(
        self,
        request: Request[Any, Any, Any],
        developer_exports: DeveloperExportsDep,
        read_need: ReadNeedDep,
        settings: SettingsDep,
        # Named as the query parameter is: a validation error names the handler's parameter (`export_format`
        # was what a client was told to fix).
        format: Annotated[Format, Parameter(description="`csv` (text/csv) or `ndjson` (application/x-ndjson).")],
        specialty: Annotated[
            str | None,
            Parameter(min_length=1, max_length=SPECIALTY_MAX, pattern=TEXT_PATTERN, description="Only this specialty."),
        ] = None,
    ) -> ASGIResponse:
        # A misspelt filter (`?speciality=`) would otherwise export the whole directory without a word.
        if unknown := sorted(set(request.query_params) - PARAMETERS):
            raise ValidationException(
                detail=f"unknown parameters: {', '.join(unknown)}",
                extra=[{"key": name, "source": "query", "message": "unknown parameter"} for name in unknown],
            )
        export = await developer_exports.start(format, specialty, read_need)
        return ExportStream(export, idle_timeout=settings.export_idle_timeout_seconds)


class ExportStream(ASGIResponse):
    """The export's answer: sends the COPY's output as it comes, and gives the connection back however it ends.

    No queue sits between the COPY and the client: the COPY's sink sends each piece (gathered up to SEND_AT)
    itself, and granian's `send` waits while the client's socket is full, so a slow reader holds back asyncpg,
    which holds back PostgreSQL. granian silently drops what is sent after the client has gone, so a task
    watches for the disconnect and cuts the export (Export.abort) at once. A client that stays but reads
    nothing for `idle_timeout` seconds is cut too: PostgreSQL, blocked writing to us, would wait forever.
    """

    _should_set_content_length = False

    def __init__(self, export: Stream, *, idle_timeout: float) -> None:
        disposition = f'attachment; filename="developers.{export.format}"'
        super().__init__(media_type=export.media_type, headers={"Content-Disposition": disposition})
        self.export = export
        self.idle_timeout = idle_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Shielded: a cancelled request (the server shutting down) still returns or closes its connection.
            await asyncio.shield(self.export.close())

    async def send_body(self, send: Send, receive: Receive) -> None:
        export = self.export
        pending: list[bytes] = []
        size = sent = 0
        stalled = False

        async def sink(piece: bytes) -> None:
            nonlocal size, sent, stalled
            pending.append(piece)
            size += len(piece)
            if size >= SEND_AT and not export.aborted:
                body, size = b"".join(pending), 0
                pending.clear()
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        await send(_body(body, more=True))
                except TimeoutError:
                    # Not raised here: asyncpg would answer an error from its sink by opening a connection to
                    # cancel the COPY. Closing ours ends the COPY with a connection error instead.
                    stalled = True
                    export.abort()
                    return
                sent += len(body)

        watcher = asyncio.create_task(_until_disconnect(receive, export))
        try:
            await export.copy_to(sink)
            await export.close()  # COMMIT before the end of the body: a stream that ends whole has ended well
        except Exception as exc:
            if export.aborted and not stalled:  # the client left: nobody to tell
                logger.info("export stopped after %d bytes: the client went away", sent)
                return
            # Raised on: the answer has started, so the server cuts the connection before the end of the body.
            if stalled:
                logger.warning("export cut after %d bytes: its client read nothing for %gs", sent, self.idle_timeout)
            else:
                logger.error("export failed after %d bytes; its stream is cut: %s", sent, exc, exc_info=exc)
            raise
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        async with asyncio.timeout(self.idle_timeout):
            await send(_body(b"".join(pending), more=False))


async def _until_disconnect(receive: Receive, export: Stream) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # the (empty) request body
    export.abort()


def _body(data: bytes, *, more: bool) -> HTTPResponseBodyEvent:
    return {"type": "http.response.body", "body": data, "more_body": more}
