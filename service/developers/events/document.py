"""The change feed's stream as the API document describes it: one schema for each Server-Sent Event of the stream.

Before OpenAPI 3.2's `itemSchema`, a `text/event-stream` answer's schema describes each event, as an EventSource
delivers it: its `event` type (`message` unless named), its `id` (the last one sent) and its `data`, here JSON
whose own schema is `contentSchema`. A change event carries an Event; the last event of a stream that fell too
far behind is a `resync` carrying a Resync. Keepalives are comments, and a keepalive's `id:` alone is no event.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Reference, Schema

from service.developers.events.cursor import MAX_LENGTH, PATTERN

_CURSOR = Schema(type=OpenAPIType.STRING, pattern=PATTERN, max_length=MAX_LENGTH, examples=["6266-6"])
_CHANGE = Schema(
    type=OpenAPIType.OBJECT,
    required=["event", "id", "data"],
    properties={
        "event": Schema(const="message"),
        "id": _CURSOR,
        "data": Schema(
            type=OpenAPIType.STRING,
            content_media_type="application/json",
            content_schema=Reference(ref="#/components/schemas/Event"),
        ),
    },
)
_RESYNC = Schema(
    type=OpenAPIType.OBJECT,
    required=["event", "data"],
    properties={
        "event": Schema(const="resync"),
        "id": _CURSOR,  # the last change event's, when there was one
        "data": Schema(
            type=OpenAPIType.STRING,
            content_media_type="application/json",
            content_schema=Schema(
                type=OpenAPIType.OBJECT,
                required=["op", "after", "detail"],
                properties={
                    "op": Schema(const="resync"),
                    "after": Schema(one_of=[_CURSOR, Schema(type=OpenAPIType.NULL)]),
                    "detail": Schema(type=OpenAPIType.STRING),
                },
            ),
        ),
    },
)


@dataclass
class EventStreamOperation(Operation):
    """The SSE route's operation: its 200 is a stream of events, which Litestar would document as one Event."""

    def __post_init__(self) -> None:
        assert self.responses is not None
        stream = OpenAPIMediaType(schema=Schema(one_of=[_CHANGE, _RESYNC]))
        self.responses["200"] = OpenAPIResponse(
            description=(
                "A stream of Server-Sent Events: each change event's `data` is an Event whose `id` is the event's "
                "`id:`; a stream that falls too far behind ends with an `event: resync`."
            ),
            content={"text/event-stream": stream},
        )
