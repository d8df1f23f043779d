"""Request and response bodies of the developers API (msgspec Structs, validated while decoding)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from service.db.models import EMAIL_MAX, NAME_MAX, SPECIALTY_MAX
from service.validation import normalize_fields

# Whitespace, spelled out: msgspec applies patterns with Python's `re`, readers of the API document with ECMA-262
# (JSON Schema's dialect), and their `\s` differ (\x1c-\x1f and \x85 are whitespace only to Python, \ufeff only
# to ECMA-262). This class means the same to both: the characters Python's `str.isspace()` accepts.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The end of the string in both dialects: Python's `$` also matches just before a final newline.
_END = r"$(?!\n)"
# At least one visible character, and no NUL (PostgreSQL text cannot hold one).
TEXT_PATTERN = rf"^[^\x00]*[^{_SPACE}\x00][^\x00]*{_END}"
# Deliberately loose: one @, a dot in the domain, no spaces. Deliverability is not knowable here.
_EMAIL = rf"^[^@{_SPACE}\x00]+@[^@{_SPACE}\x00]+\.[^@{_SPACE}\x00]+{_END}"

# msgspec reports a failed pattern by quoting the regex; clients get the rule in words instead.
_RULES = {
    "email": "an email address: one @, a dot in the domain, no spaces",
    "name": "at least one visible character and no NUL",
    "specialty": "at least one visible character and no NUL",
}


def readable(message: str, field: str | None) -> str:
    """msgspec's validation message, with a regex replaced by the rule it encodes."""
    if field in _RULES and message.startswith("Expected `str` matching regex"):
        return f"Expected `str` with {_RULES[field]}"
    return message


_NAMED_FIELD = re.compile(r"field `(\w+)`")


def named_field(message: str) -> str | None:
    """The field a msgspec message names, as in "Object missing required field `email`" (whose path ends at the
    object, not the field)."""
    match = _NAMED_FIELD.search(message)
    return match[1] if match else None


Name = Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_MAX, pattern=TEXT_PATTERN, examples=["Ada Lovelace"])]
Email = Annotated[str, msgspec.Meta(max_length=EMAIL_MAX, pattern=_EMAIL, examples=["ada@example.com"])]
Specialty = Annotated[
    str, msgspec.Meta(min_length=1, max_length=SPECIALTY_MAX, pattern=TEXT_PATTERN, examples=["compilers"])
]


class Developer(msgspec.Struct, frozen=True):
    """A developer as the API shows it. Field order matches `DEVELOPER_COLUMNS` so rows map positionally."""

    id: int
    name: str
    email: str
    specialty: str
    created_at: datetime
    updated_at: datetime


# Every developer body puts its text in NFC as it is decoded (service.validation).
_TEXT_FIELDS = {"name": NAME_MAX, "email": EMAIL_MAX, "specialty": SPECIALTY_MAX}


class DeveloperCreate(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Name
    email: Email
    specialty: Specialty

    def __post_init__(self) -> None:
        # A bulk import decodes one of these per row. ASCII is always in NFC, and `isascii` only reads a flag of
        # the string: an all-ASCII row costs about 0.15 µs here, against 0.5 µs going field by field (measured).
        if not (self.name.isascii() and self.email.isascii() and self.specialty.isascii()):
            normalize_fields(self, _TEXT_FIELDS)


class DeveloperUpdate(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """Any of the fields; those left out keep their value."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType = msgspec.UNSET
    specialty: Specialty | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        normalize_fields(self, _TEXT_FIELDS)

    def changes(self) -> dict[str, str]:
        return _given(self, self.__struct_fields__)


class DeveloperPage(msgspec.Struct, frozen=True):
    """One page of a listing; pass `next_cursor` back as `cursor` for the next one (null on the last page)."""

    items: list[Developer]
    next_cursor: str | None


# Bulk routes

OnConflict = Literal["error", "skip", "update"]
DeveloperId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class BulkCreateResult(msgspec.Struct, frozen=True):
    """What a bulk import did; the three counts add up to the rows sent."""

    created: int
    updated: int
    skipped: int


class DeveloperBatchUpdate(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """One item of a batch update: the developer's id and any of the fields to change."""

    id: DeveloperId
    name: Name | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType = msgspec.UNSET
    specialty: Specialty | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        normalize_fields(self, _TEXT_FIELDS)

    def changes(self) -> dict[str, str]:
        return _given(self, ("name", "email", "specialty"))


def _given(struct: msgspec.Struct, fields: tuple[str, ...]) -> dict[str, str]:
    """The fields the client gave (UNSET means left out)."""
    return {f: v for f in fields if (v := getattr(struct, f)) is not msgspec.UNSET}


class BatchUpdateResult(msgspec.Struct, frozen=True):
    updated: int


class BulkDelete(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    ids: list[DeveloperId]


class BulkDeleteResult(msgspec.Struct, frozen=True):
    """`not_found` lists the ids that named no developer (already gone, or never there), in ascending order."""

    deleted: int
    not_found: list[int]
