"""Keyset cursors: the (name, id) of the last row of a page, so the next page starts right after it.

Keyset pagination reads only the rows it returns (an index range scan from the cursor), where OFFSET would read
and discard every row before the page; and rows inserted or deleted between pages cannot shift it.

A cursor is `<name>.<id>`: the name's UTF-8 bytes in lowercase hex, a dot, the id in decimal. It is safe in a URL
as it is, and its form is one the API document can state exactly (PATTERN): each string of that form is a place
in (name, id) order, answered with the page after it, and any other string is 400. (A cursor of base64 JSON had
forms the document could not tell apart: `cursor=0` was schema-valid and refused.)
"""

from __future__ import annotations

import re

from service.core.errors import InvalidInput
from service.core.limits import NAME_MAX
from service.core.validation import END, ID_DIGITS, ID_MAX

# One character of a name, as UTF-8 in hex: any Unicode scalar value but NUL (PostgreSQL text cannot hold one),
# in its shortest form, so that the bytes always decode.
_CHARACTER = (
    "(?:0[1-9a-f]|[1-7][0-9a-f]"  # U+0001 to U+007F
    "|(?:c[2-9a-f]|d[0-9a-f])[89ab][0-9a-f]"  # to U+07FF
    "|e0[ab][0-9a-f][89ab][0-9a-f]"  # to U+0FFF
    "|(?:e[1-9a-c]|e[ef])[89ab][0-9a-f][89ab][0-9a-f]"  # to U+CFFF, U+E000 to U+FFFF
    "|ed[89][0-9a-f][89ab][0-9a-f]"  # U+D000 to U+D7FF (never a surrogate)
    "|f0[9ab][0-9a-f](?:[89ab][0-9a-f]){2}"  # U+10000 to U+3FFFF
    "|f[1-3](?:[89ab][0-9a-f]){3}"  # to U+FFFFF
    "|f48[0-9a-f](?:[89ab][0-9a-f]){2})"  # to U+10FFFF
)
PATTERN = rf"^{_CHARACTER}*\.{ID_DIGITS}{END}"
_FORM = re.compile(PATTERN)
# The longest: a name of NAME_MAX characters of four UTF-8 bytes each, the dot, the largest id.
MAX_LENGTH = NAME_MAX * 8 + 1 + len(str(ID_MAX))


class InvalidCursor(InvalidInput):
    """The cursor is not of the form next_cursor has."""

    def __init__(self) -> None:
        message = "not a `next_cursor` of this API: the name in UTF-8 hex, a dot, the id"
        super().__init__("Validation failed", [{"key": "cursor", "source": "query", "message": message}])


def encode(name: str, id_: int) -> str:
    return f"{name.encode().hex()}.{id_}"


def decode(cursor: str) -> tuple[str, int]:
    """The (name, id) of a cursor; InvalidCursor if it is not of the form PATTERN states."""
    if len(cursor) > MAX_LENGTH or not _FORM.match(cursor):
        raise InvalidCursor()
    name, _, id_ = cursor.rpartition(".")
    return bytes.fromhex(name).decode(), int(id_)
