"""Request and response bodies of the developers API (msgspec Structs, validated while decoding)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from service.core.limits import EMAIL_MAX, NAME_MAX, SPECIALTY_MAX
from service.core.validation import TEXT_PATTERN, Email, Id, ShownEmail, Timestamp, normalize_fields
from service.db import models

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_MAX, pattern=TEXT_PATTERN, examples=["Ada Lovelace"])]
# One entity-tag (RFC 9110), as an ETag header carries it.
IfMatchTag = Annotated[str, msgspec.Meta(max_length=64, pattern=r'^(W/)?"[!#-~]*"$', examples=['"42.3"'])]
Specialty = Annotated[
    str, msgspec.Meta(min_length=1, max_length=SPECIALTY_MAX, pattern=TEXT_PATTERN, examples=["compilers"])
]


class Developer(msgspec.Struct, frozen=True):
    """A developer as the API shows it; rows become one by column name (service.developers.service)."""

    id: Annotated[int, msgspec.Meta(examples=[42])]
    name: Annotated[str, msgspec.Meta(examples=["Ada Lovelace"])]
    email: ShownEmail
    specialty: Annotated[str, msgspec.Meta(examples=["compilers"])]
    created_at: Timestamp
    updated_at: Timestamp


# Every developer body puts its text in NFC as it is decoded (service.core.validation).
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
    next_cursor: Annotated[str | None, msgspec.Meta(examples=["416461204c6f76656c616365.42"])]  # ("Ada Lovelace", 42)


# Bulk routes

OnConflict = models.OnConflict  # the routes' `on_conflict`, stored with a background import's job


class BulkCreateResult(msgspec.Struct, frozen=True):
    """What a bulk import did; the three counts add up to the rows sent."""

    created: int
    updated: int
    skipped: int


class DeveloperBatchUpdate(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """One item of a batch update: the developer's id and at least one of the fields to change."""

    # The id and a field to change: an item without one is refused (400) by the batch update, and the API
    # document says so with `minProperties` and `anyOf` (service.web.openapi).
    min_properties: ClassVar[int] = 2
    required_one_of: ClassVar[tuple[str, ...]] = ("name", "email", "specialty")

    id: Id
    name: Name | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType = msgspec.UNSET
    specialty: Specialty | msgspec.UnsetType = msgspec.UNSET
    # The developer's ETag as GET answered it: the item is written only if the developer is still at that version.
    if_match: IfMatchTag | msgspec.UnsetType = msgspec.UNSET

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
    ids: list[Id]


class BulkDeleteResult(msgspec.Struct, frozen=True):
    """`not_found` lists the ids that named no developer (already gone, or never there), in ascending order."""

    deleted: int
    not_found: list[int]


# A developer's row in the import's and the export's formats: DeveloperCreate's fields, in the CSV header's order.
CSV_HEADER: tuple[str, ...] = DeveloperCreate.__struct_fields__
