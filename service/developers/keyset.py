"""Opaque keyset cursors: the (name, id) of the last row of a page, so the next page starts right after it.

Keyset pagination reads only the rows it returns (an index range scan from the cursor), where OFFSET would read
and discard every row before the page; and rows inserted or deleted between pages cannot shift it.
"""

from __future__ import annotations

import base64
import binascii
import math

import msgspec

from service.db.models import NAME_MAX
from service.errors import InvalidInput
from service.validation import ID_MAX

# The cursor's form, for the API document and the parameter's validation: unpadded URL-safe base64 of the JSON
# array [name, id]. Its longest: a name of NAME_MAX characters that JSON escapes to six bytes each (control
# characters become \u00XX), the 19 digits of the largest id, and the brackets, quotes and comma.
PATTERN = r"^[A-Za-z0-9_-]+$"
MAX_LENGTH = math.ceil((NAME_MAX * 6 + len(str(ID_MAX)) + 5) * 4 / 3)


class InvalidCursor(InvalidInput):
    """The cursor was not made by this service (or was altered)."""

    def __init__(self, message: str) -> None:
        super().__init__("Validation failed", [{"key": "cursor", "source": "query", "message": message}])


class _Position(msgspec.Struct, array_like=True, frozen=True):
    name: str
    id: int


def encode(name: str, id_: int) -> str:
    raw = msgspec.json.encode(_Position(name, id_))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(cursor: str) -> tuple[str, int]:
    # A position holds at most a name and an id; anything longer is not ours.
    if len(cursor) > MAX_LENGTH:
        raise InvalidCursor("cursor is too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = msgspec.json.decode(raw, type=_Position)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    if not 1 <= position.id <= ID_MAX or "\x00" in position.name:
        raise InvalidCursor("cursor is not valid")
    return position.name, position.id
