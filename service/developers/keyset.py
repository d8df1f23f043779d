"""Opaque keyset cursors: the (name, id) of the last row of a page, so the next page starts right after it.

Keyset pagination reads only the rows it returns (an index range scan from the cursor), where OFFSET would read
and discard every row before the page; and rows inserted or deleted between pages cannot shift it.
"""

from __future__ import annotations

import base64
import binascii

import msgspec

from service.db.models import NAME_MAX


class InvalidCursor(ValueError):
    """The cursor was not made by this service (or was altered)."""


class _Position(msgspec.Struct, array_like=True, frozen=True):
    name: str
    id: int


def encode(name: str, id_: int) -> str:
    raw = msgspec.json.encode(_Position(name, id_))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(cursor: str) -> tuple[str, int]:
    # A position holds at most a name and an id; anything longer is not ours.
    if len(cursor) > NAME_MAX * 8:
        raise InvalidCursor("cursor is too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = msgspec.json.decode(raw, type=_Position)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    if not 0 < position.id < 2**63 or "\x00" in position.name:
        raise InvalidCursor("cursor is not valid")
    return position.name, position.id
