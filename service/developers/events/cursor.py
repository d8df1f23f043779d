"""Event cursors: `<xid>-<id>`, the writer's transaction id and the event's id, in the order events are served.

An event's `id` is its cursor; `?after=` and SSE's `Last-Event-ID` take one back. Cursors compare as pairs of
integers (`parse` gives the pair), never as strings. PATTERN is their exact form, for the API document and for
`parse`: both parts in canonical decimal, each at most 2**63 - 1 (both are 64-bit in PostgreSQL; xid8 is
unsigned, but far from its top). `0-0` is before every event.
"""

from __future__ import annotations

import re

from service.core.errors import InvalidInput
from service.core.validation import END, decimal_pattern

Cursor = tuple[int, int]
START: Cursor = (0, 0)  # before every event
_PART = decimal_pattern(0, 2**63 - 1)
PATTERN = f"^{_PART}-{_PART}{END}"
MAX_LENGTH = 2 * len(str(2**63 - 1)) + 1
_FORM = re.compile(PATTERN)


class InvalidCursor(InvalidInput):
    def __init__(self, source: str, key: str) -> None:
        message = "not an event id of this feed (`<transaction>-<event>`, as in an event's `id`)"
        super().__init__("Validation failed", [{"key": key, "source": source, "message": message}])


def format_cursor(cursor: Cursor) -> str:
    return f"{cursor[0]}-{cursor[1]}"


def parse(text: str, *, source: str = "query", key: str = "after") -> Cursor:
    if not _FORM.match(text):
        raise InvalidCursor(source, key)
    xid, _, event_id = text.partition("-")
    return int(xid), int(event_id)
