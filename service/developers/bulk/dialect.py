"""The seam between the bulk service and the server: what an import, a batch update and a batch delete send.

The service (service.py) checks what a client sent, begins the transaction, turns results into answers and counts
metrics; a BulkSql sends the statements, PostgreSQL's (postgresql.py: COPY, arrays, RETURNING) or MariaDB's
(mariadb.py: multi-row INSERTs, temporary tables, summary events written by the service). One is chosen per
process from `settings.backend` (servers.py), where the service is built (the developers' deps, a worker's runner).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from service.developers.bulk.rows import Row
from service.developers.schemas import BulkCreateResult, OnConflict


@dataclass(frozen=True, slots=True)
class Change:
    """One item of a batch update: None keeps a field (and, as `version`, accepts any version)."""

    id: int
    name: str | None
    email: str | None
    specialty: str | None
    version: int | None


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """Rows a batch update wrote; when fewer than its items, the items naming no row and those at another version
    (counts, and the first REPORTED ids of each, in id order)."""

    updated: int
    missing: int = 0
    missing_ids: tuple[int, ...] = ()
    stale: int = 0
    stale_ids: tuple[int, ...] = ()


class BulkSql(Protocol):
    """The statements of the bulk paths on one server, run in the session's transaction (begun by the caller).

    Each raises EmailsTaken for an import's conflicts in error mode, and lets the driver's IntegrityError through
    for an email a batch update gives twice or takes from another developer (the service names the rows)."""

    async def import_rows(
        self,
        session: AsyncSession,
        first: list[Row],
        rest: AsyncIterator[list[Row]],
        on_conflict: OnConflict,
        timeout_ms: int,
    ) -> BulkCreateResult: ...

    async def update_many(self, session: AsyncSession, changes: list[Change], timeout_ms: int) -> BatchOutcome: ...

    async def delete_many(self, session: AsyncSession, ids: list[int]) -> tuple[int, list[int]]: ...
