"""A developer's validator, and what an `If-Match` asks of it (docs/decisions/0008-developer-etags.md).

A developer's ETag is `"<id>.<version>"`: `version` is a column every write of the row increments in the same
statement (service.developers.service, service.developers.bulk.service), so the tag changes with every committed
change and only then, and it comes with the row in the read's one SELECT. The id makes a tag of one developer
never match another's. A page of a listing carries a hash of its body instead: it changes when any of its rows,
or the page's end, does.

`If-Match` becomes the versions the write may overwrite (`Versions`): `ANY_VERSION` for `*` (the developer must
exist), else the versions of the strong tags that name this developer (possibly none: then nothing matches).
"""

from __future__ import annotations

import re
from typing import Final, Literal

from xxhash import xxh3_128_hexdigest

from service.web.conditional import is_any, strong_tags

ANY_VERSION: Final = "*"
Versions = frozenset[int] | Literal["*"]
_OURS = re.compile(r'"([1-9][0-9]{0,18})\.([1-9][0-9]{0,18})"')


def developer_etag(developer_id: int, version: int) -> str:
    return f'"{developer_id}.{version}"'


def page_etag(body: bytes) -> str:
    """The strong validator of a page's JSON bytes: their 128-bit XXH3 hash, a tag, not a secret. (0.3 µs a page of
    100 rows, 17 KB; SHA-1 took 9 µs, 2% of the page's whole CPU time in the service: docs/benchmarks.md.)"""
    return f'"{xxh3_128_hexdigest(body)}"'


def if_match_versions(header: str, developer_id: int) -> Versions:
    """The versions of developer `developer_id` an `If-Match: header` accepts."""
    if is_any(header):
        return ANY_VERSION
    return frozenset(version for tag in strong_tags(header) if (version := tag_version(tag, developer_id)) is not None)


def tag_version(tag: str, developer_id: int) -> int | None:
    """The version one strong ETag, as a GET gave it, names for `developer_id`; None: it cannot match (a weak tag,
    another developer's, not one of ours)."""
    match = _OURS.fullmatch(tag)
    if match is None or int(match[1]) != developer_id:
        return None
    return int(match[2])
