"""Field rules shared by every domain: text and email patterns, ids, passwords, Unicode NFC, readable messages.

"café" may arrive composed (é, one code point) or decomposed (e and a combining accent): the same text to a
reader, two strings to PostgreSQL's unique index. Text fields are stored in NFC, the composed form, so equal
text compares equal; a CHECK on each email column holds every write path to it (migration 0003).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Annotated

import msgspec

from service.db.models import EMAIL_MAX

# Whitespace, spelled out: msgspec applies patterns with Python's `re`, readers of the API document with ECMA-262
# (JSON Schema's dialect), and their `\s` differ (\x1c-\x1f and \x85 are whitespace only to Python, \ufeff only
# to ECMA-262). This class means the same to both: the characters Python's `str.isspace()` accepts.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The end of the string in both dialects: Python's `$` also matches just before a final newline.
_END = r"$(?!\n)"
# At least one visible character, and no NUL (PostgreSQL text cannot hold one).
TEXT_PATTERN = rf"^[^\x00]*[^{_SPACE}\x00][^\x00]*{_END}"
# Deliberately loose: one @, a dot in the domain, no spaces. Deliverability is not knowable here.
EMAIL_PATTERN = rf"^[^@{_SPACE}\x00]+@[^@{_SPACE}\x00]+\.[^@{_SPACE}\x00]+{_END}"

# Every id column is a PostgreSQL bigint identity: ids run from 1 to this.
ID_MAX = 2**63 - 1
PASSWORD_MIN = 12  # long enough to resist guessing at argon2's cost; no composition rules (NIST SP 800-63B)
PASSWORD_MAX = 1024  # argon2 hashes any length; this only bounds the work one request can ask for

Email = Annotated[str, msgspec.Meta(max_length=EMAIL_MAX, pattern=EMAIL_PATTERN, examples=["ada@example.com"])]
Password = Annotated[str, msgspec.Meta(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]
Id = Annotated[int, msgspec.Meta(ge=1, le=ID_MAX)]

# msgspec reports a failed pattern by quoting the regex; clients get the rule in words instead.
_RULES = {
    f"Expected `str` matching regex {TEXT_PATTERN!r}": "Expected `str` with at least one visible character and no NUL",
    f"Expected `str` matching regex {EMAIL_PATTERN!r}": (
        "Expected `str` with an email address: one @, a dot in the domain, no spaces"
    ),
}
_NAMED_FIELD = re.compile(r"field `(\w+)`")


def readable(message: str) -> str:
    """msgspec's validation message, with a regex replaced by the rule it encodes."""
    for quoted, rule in _RULES.items():
        if message.startswith(quoted):
            return rule
    return message


def named_field(message: str) -> str | None:
    """The field a msgspec message names, as in "Object missing required field `email`" (whose path ends at the
    object, not the field)."""
    match = _NAMED_FIELD.search(message)
    return match[1] if match else None


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
