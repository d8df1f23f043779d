"""Field rules shared by every domain: text in Unicode NFC.

"café" may arrive composed (é, one code point) or decomposed (e and a combining accent): the same text to a
reader, two strings to PostgreSQL's unique index. Text fields are stored in NFC, the composed form, so equal
text compares equal; a CHECK on each email column holds every write path to it (migration 0003).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

import msgspec


def nfc(text: str) -> str:
    # ASCII is always in NFC; the quick check passes most other text without building a new string.
    return text if text.isascii() or unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def normalize_fields(struct: msgspec.Struct, limits: Mapping[str, int]) -> None:
    """Put the text fields named in `limits` in NFC, in place: for a Struct's `__post_init__`, which msgspec
    runs after its own checks, so each field's length limit is checked again (NFC lengthens a few strings).
    Fields left out (UNSET) stay so."""
    for field, limit in limits.items():
        value = getattr(struct, field)
        if isinstance(value, str) and not value.isascii() and not unicodedata.is_normalized("NFC", value):
            value = unicodedata.normalize("NFC", value)
            if len(value) > limit:
                raise ValueError(f"field `{field}` is longer than {limit} characters in Unicode NFC")
            msgspec.structs.force_setattr(struct, field, value)
