"""Field rules shared by every domain: text and email patterns, ids, passwords, Unicode NFC, readable messages.

"café" may arrive composed (é, one code point) or decomposed (e and a combining accent): the same text to a
reader, two strings to PostgreSQL's unique index. Text fields are stored in NFC, the composed form, so equal
text compares equal; a CHECK on each email column holds every write path to it (migration 0003).

Invisible format characters (Unicode category Cf: zero-width spaces and joiners, bidirectional marks and
overrides, tags) would make two emails that read the same differ, or an email read as another: an email holds
none. Names and specialties may need some (a zero-width non-joiner spells Persian, a joiner builds an emoji), but
never the bidirectional embeddings, overrides and isolates, which reorder whatever is displayed after them; and
their one visible character must be neither a space nor a format character.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

import msgspec

from service.core.limits import EMAIL_MAX

# Whitespace, spelled out: msgspec applies patterns with Python's `re`, readers of the API document with ECMA-262
# (JSON Schema's dialect), and their `\s` differ (\x1c-\x1f and \x85 are whitespace only to Python, \ufeff only
# to ECMA-262). This class means the same to both: the characters Python's `str.isspace()` accepts.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Unicode's format characters (category Cf, as of Unicode 15.1). Those above U+FFFF are written as themselves:
# Python's `\U0001xxxx` and ECMA-262's `\u{1xxxx}` have no spelling in common, a code point has.
_FORMAT = (
    r"\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    r"\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f"
)
# The bidirectional embeddings, overrides and isolates, and the deprecated format controls after them.
_REORDERING = r"\u202a-\u202e\u2066-\u206f"
# The end of the string in both dialects: Python's `$` also matches just before a final newline.
END = r"$(?!\n)"
# At least one visible character, no NUL (PostgreSQL text cannot hold one), nothing that reorders the display.
TEXT_PATTERN = rf"^[^\x00{_REORDERING}]*[^{_SPACE}{_FORMAT}\x00][^\x00{_REORDERING}]*{END}"
# Deliberately loose: one @, a dot in the domain, no spaces, nothing invisible. Deliverability is not knowable here.
_EMAIL_CHARACTER = rf"[^@{_SPACE}{_FORMAT}\x00]"
EMAIL_PATTERN = rf"^{_EMAIL_CHARACTER}+@{_EMAIL_CHARACTER}+\.{_EMAIL_CHARACTER}+{END}"

# Every id column is a PostgreSQL bigint identity: ids run from 1 to this.
ID_MAX = 2**63 - 1
PASSWORD_MIN = 12  # long enough to resist guessing at argon2's cost; no composition rules (NIST SP 800-63B)
PASSWORD_MAX = 1024  # argon2 hashes any length; this only bounds the work one request can ask for


def decimal_pattern(low: int, high: int) -> str:
    """A regex, without anchors, for the integers from `low` (0 or 1) to `high` in canonical decimal: ASCII digits,
    no sign, no leading zero. So a document can state a range that a JSON Schema `integer` cannot carry: the
    digits of a number in a string (a cursor, a header)."""
    assert low in (0, 1)
    assert high >= 1
    digits = str(high)
    shorter = [] if len(digits) == 1 else [_run("[1-9]", "[0-9]", len(digits) - 2, at_least=0)]
    same_length = []
    for position, digit in enumerate(digits):
        lowest = 1 if position == 0 else 0
        below = int(digit) - 1  # the largest digit here that leaves the rest free
        if below >= lowest:
            choice = str(lowest) if below == lowest else f"[{lowest}-{below}]"
            same_length.append(digits[:position] + _run(choice, "[0-9]", len(digits) - position - 1))
    return "(?:" + "|".join([*(["0"] if low == 0 else []), *shorter, *same_length, digits]) + ")"


def _run(first: str, rest: str, count: int, *, at_least: int | None = None) -> str:
    """`first` then `count` of `rest` (from `at_least` to `count`, when given)."""
    if count == 0:
        return first
    repeat = f"{{{count}}}" if at_least is None else f"{{{at_least},{count}}}"
    return first + rest + repeat


Email = Annotated[str, msgspec.Meta(max_length=EMAIL_MAX, pattern=EMAIL_PATTERN, examples=["ada@example.com"])]
Password = Annotated[str, msgspec.Meta(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]
Id = Annotated[int, msgspec.Meta(ge=1, le=ID_MAX)]
# The API document's examples for the fields answers share (no rule: they are never decoded from a client), as
# the API writes them: timestamps in UTC, with their zone.
Timestamp = Annotated[datetime, msgspec.Meta(examples=["2025-03-14T09:26:53.589793Z"])]
ShownEmail = Annotated[str, msgspec.Meta(examples=["ada@example.com"])]
# An id written out (a path segment, a cursor), as the service writes one: 1 to ID_MAX in canonical decimal.
ID_DIGITS = decimal_pattern(1, ID_MAX)
ID_PATTERN = f"^{ID_DIGITS}{END}"

# msgspec reports a failed pattern by quoting the regex; clients get the rule in words instead.
_RULES = {
    f"Expected `str` matching regex {TEXT_PATTERN!r}": (
        "Expected `str` with at least one visible character, no NUL and no bidirectional embedding, override or isolate"
    ),
    f"Expected `str` matching regex {EMAIL_PATTERN!r}": (
        "Expected `str` with an email address: one @, a dot in the domain, no spaces, no invisible (format) characters"
    ),
    f"Expected `str` matching regex {ID_PATTERN!r}": (
        f"Expected `str` with an id: an integer from 1 to {ID_MAX} in ASCII digits, no leading zero"
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
