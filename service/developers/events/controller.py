"""The change feed's routes: the same events as Server-Sent Events and over a WebSocket.

Neither route holds a database session or connection while it streams: a stream reads from the process's feed
(service.developers.events.feed), and only a replay (`after`) borrows pooled connections, a page at a time.

A browser's EventSource sends no Authorization header, and its WebSocket none either: both routes take a feed
ticket as `?ticket=` instead (service.accounts.tickets), a credential good for the feed alone and for seconds, so
the URL that carries it is worth little once seen; the request log names the route's template, never its URL, and
traces redact it (service.observability.traces). The WebSocket route also takes the token itself as a subprotocol:
`new WebSocket(url, ["bearer", token])`; the server accepts the `bearer` protocol (see service.accounts.auth). Its
handshake is refused (403) to a page of an origin that is neither the service's own nor in CORS_ALLOW_ORIGINS
(service.web.cors).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIType
from litestar.params import HeaderParameter, Parameter
from litestar.response import ServerSentEventMessage
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import Receive, Send

from service.accounts.auth import Principal
from service.accounts.guards import READ_DEVELOPERS
from service.accounts.tickets import TICKET_OPT
from service.core.errors import DomainError
from service.core.limits import SPECIALTY_MAX
from service.core.validation import TEXT_PATTERN, nfc
from service.developers.deps import FeedDep
from service.developers.events import cursor as cursors
from service.developers.events.cursor import Cursor
from service.developers.events.document import EventStreamOperation
from service.developers.events.feed import Feed
from service.developers.events.schemas import Event, Ping, Resync
from service.developers.events.stored import Audience, StoredEvent
from service.web.controller import Controller
from service.web.cors import same_origin_or_allowed
from service.web.problems import COMMON_RESPONSES, problem_response
from service.web.routes import get

# Cursors are checked by the handlers (service.developers.events.cursor.parse), which name the parameter as the
# client sent it (`Last-Event-ID`, not Litestar's `last_event_id`); the document states their form all the same.
# On the WebSocket route a parameter that failed Litestar's validation would be refused at the handshake, with a
# bare HTTP 403 a browser's WebSocket cannot even read: there it is checked once the socket is accepted.
_CURSOR_FORM = {"pattern": cursors.PATTERN, "max_length": cursors.MAX_LENGTH}
After = Annotated[
    str | None,
    Parameter(
        schema_extra=_CURSOR_FORM,
        description="Replay every event after this one (an event's `id`), then continue live; omit to start now.",
    ),
]
SocketAfter = Annotated[
    str | None,
    Parameter(
        schema_extra=_CURSOR_FORM,
        description="Replay every event after this one (an event's `id`); closes with 4400 if malformed.",
    ),
]
Specialty = Annotated[
    str | None,
    Parameter(
        min_length=1,
        max_length=SPECIALTY_MAX,
        pattern=TEXT_PATTERN,
        description="Only events about this specialty (bulk events that touched it, or too many to list).",
    ),
]
LastEventId = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID",
        # A header is a string or absent, never JSON's null (Litestar writes `str | None` as one of the two).
        schema_extra=_CURSOR_FORM | {"one_of": None, "type": OpenAPIType.STRING},
        description="Sent by an EventSource that reconnects.",
    ),
]
# Read by the auth middleware before the handler runs (service.accounts.auth); declared here for the document.
Ticket = Annotated[
    str | None,
    Parameter(
        max_length=4096,
        description=(
            "A feed ticket (`POST /api/developers/events/tickets`) in place of the bearer token, for a browser page: "
            "without an Authorization header (both are a 401); invalid or expired is 401 (on the WebSocket, a 403 "
            "at the handshake). Checked when the stream starts, which outlives it."
        ),
    ),
]
TICKETED = {TICKET_OPT: True}
GONE = {
    410: problem_response(
        "Events after this cursor are older than EVENTS_RETENTION_HOURS: follow the feed from now, then list the "
        "developers again."
    )
}
# WebSocket close codes: 4000 + the HTTP status the same problem has on the SSE route.
_CLOSE_INVALID, _CLOSE_GONE = 4400, 4410
_ENCODER = msgspec.json.Encoder()


class EventsController(Controller):
    path = "/api/developers/events"
    tags = ["developers"]

    @get(
        summary="Follow changes to developers as Server-Sent Events",
        description=(
            "Each event's `id` is its cursor: reconnecting with `Last-Event-ID` (as EventSource does) or "
            "`?after=` replays every event committed after it, without gaps, then continues live. Bulk work "
            "arrives as one summary event per statement (`op: bulk`). Idle streams get a comment line every "
            "EVENTS_KEEPALIVE_SECONDS; a subscriber that falls too far behind gets an `event: resync` with the "
            "cursor to resume from, and the stream ends. An import job's events (`import.*`) go to its submitter "
            "and to admins only, as `GET /api/imports/{job_id}` does; a keepalive after events the subscriber is "
            "not shown carries an `id:` with the cursor to resume from."
        ),
        guards=[READ_DEVELOPERS],
        opt=TICKETED,
        operation_class=EventStreamOperation,
        # The Event here puts its schema among the document's components; the operation describes the stream.
        responses=COMMON_RESPONSES
        | GONE
        | {200: ResponseSpec(Event, media_type="text/event-stream", description="Events.", generate_examples=False)},
    )
    async def follow_developer_events(
        self,
        request: Request[Principal, Any, Any],
        feed: FeedDep,
        after: After = None,
        specialty: Specialty = None,
        last_event_id: LastEventId = None,
        ticket: Ticket = None,
    ) -> EventStream:
        # An EventSource reconnects with the URL it started with and the id of the last event it got: the
        # header is the newer of the two.
        resume = (
            cursors.parse(last_event_id, source="header", key="Last-Event-ID")
            if last_event_id is not None
            else (None if after is None else cursors.parse(after))
        )
        if resume is not None:
            await feed.resumable(resume)
        return EventStream(_as_sse(feed.events(resume, _audience(request.user, specialty))))

    @websocket("/ws", guards=[same_origin_or_allowed, READ_DEVELOPERS], opt=TICKETED)
    async def follow_socket(
        self,
        socket: WebSocket[Any, Any, Any],
        feed: FeedDep,
        after: SocketAfter = None,
        specialty: Specialty = None,
        ticket: Ticket = None,
    ) -> None:
        """The same events as JSON text messages; `{"op": "ping"}` on idle streams (with `after`, the cursor to
        resume from, when events the subscriber is not shown went by), `{"op": "resync", ...}` before the server
        closes a subscriber that fell too far behind. Closes with 4400 for a malformed `after` and 4410 for an
        expired one."""
        offered = socket.scope.get("subprotocols") or []
        await socket.accept(subprotocols="bearer" if "bearer" in offered else None)
        try:
            resume = None if after is None else cursors.parse(after)
            if resume is not None:
                await feed.resumable(resume)
        except DomainError as exc:
            await socket.close(code=_CLOSE_GONE if exc.status == 410 else _CLOSE_INVALID, reason=exc.detail[:120])
            return
        await _serve_socket(socket, feed, resume, _audience(socket.user, specialty))


class EventStream(ASGIStreamingResponse):
    """Litestar's streaming answer as `text/event-stream`, which closes its events however the stream ends.

    When a client goes away, Litestar's send loop ends by a cancellation or by an error from `send`, and either
    way leaves the generator it was reading suspended at a `yield`, with its subscription, until the garbage
    collector finds it (rarely, with the collector tuned by service.system.runtime). Closing it here ends the
    subscription at once.
    """

    def __init__(self, events: AsyncGenerator[bytes]) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(iterator=events, media_type="text/event-stream", headers=headers)
        self.events = events

    async def send_body(self, send: Send, receive: Receive) -> None:
        try:
            await super().send_body(send, receive)
        finally:
            await self.events.aclose()


def _audience(principal: Principal, specialty: str | None) -> Audience:
    return Audience(specialty and nfc(specialty), principal.sees_owner)


async def _as_sse(items: AsyncGenerator[StoredEvent | Resync | Ping]) -> AsyncGenerator[bytes]:
    try:
        async for item in items:
            if isinstance(item, StoredEvent):
                message = ServerSentEventMessage(data=item.json.decode(), id=item.event.id)
            elif isinstance(item, Ping):
                message = ServerSentEventMessage(data=None, comment="keepalive", id=item.after)
            else:
                message = ServerSentEventMessage(data=_ENCODER.encode(item).decode(), event="resync")  # the end
            yield message.encode()
    finally:
        await items.aclose()  # the subscription ends with the stream


async def _serve_socket(
    socket: WebSocket[Any, Any, Any], feed: Feed, resume: Cursor | None, audience: Audience
) -> None:
    events = feed.events(resume, audience)
    sender = asyncio.create_task(_send(socket, events))
    receiver = asyncio.create_task(_until_closed(socket))
    done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    for task in (sender, receiver):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await task
    await events.aclose()  # a sender cancelled while the events wait at a `yield` would leave them open
    if sender in done:  # a resync, or an error: the client is still there to be told
        code, reason = (1000, "resync") if sender.exception() is None else (1011, "the feed failed; reconnect")
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await socket.close(code=code, reason=reason)


async def _send(socket: WebSocket[Any, Any, Any], items: AsyncIterator[StoredEvent | Resync | Ping]) -> None:
    async for item in items:
        data = item.json if isinstance(item, StoredEvent) else _ENCODER.encode(item)
        await socket.send_text(data.decode())
        if isinstance(item, Resync):
            return


async def _until_closed(socket: WebSocket[Any, Any, Any]) -> None:
    """Read (and ignore) what the client sends, until it closes: then the sender is stopped."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await socket.receive_data(mode="text")
