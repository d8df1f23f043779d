"""The 409 of an import in error mode, from the conflicting emails each server's query finds."""

from __future__ import annotations

from collections.abc import Sequence

from service.core.errors import REPORTED
from service.developers.errors import EmailsTaken

# (email as first sent, the rows that carry it, whether it was in the table before this request)
Conflict = tuple[str, Sequence[int], bool]


def emails_taken(conflicts: list[Conflict], total: int) -> EmailsTaken:
    """EmailsTaken listing the first REPORTED `conflicts` of `total`; none found means a concurrent request wrote
    a clashing email after this one looked."""
    if not conflicts:
        return EmailsTaken("a concurrent request wrote one of these emails; nothing was written", [])
    extra = [
        {"email": email, "rows": list(rows), "reason": "taken" if taken else "repeated"}
        for email, rows, taken in conflicts
    ]
    shown = f" (the first {REPORTED} are listed)" if total > REPORTED else ""
    detail = f"{total} email(s) already exist or repeat within the request{shown}; nothing was written"
    return EmailsTaken(detail, extra)
