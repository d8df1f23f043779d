"""A background import's rows on MariaDB, in the job's transaction: multi-row INSERTs, one per chunk.

A stand-in for the bulk writer on MariaDB (issue 26's bulk part, its own branch): when that lands, the worker
takes it instead (service.imports.mariadb.runner builds its writer in one place), with its 409 diagnostics and
its summary event. Here: on_conflict=error is a plain INSERT (a taken or repeated email: EmailsTaken, nothing
written); skip is INSERT IGNORE, update `ON DUPLICATE KEY UPDATE`, whose affected rows count 1 per row inserted and 2
per row updated (`email_lower`'s unique index is the developers' only unique key besides the id).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.errors import duplicate_value
from service.developers.bulk.rows import Row
from service.developers.errors import EmailsTaken
from service.developers.schemas import BulkCreateResult, OnConflict

_INSERT = "INSERT INTO developers (name, email, specialty) VALUES (:name, :email, :specialty)"
# skip: IGNORE (rows are validated already: only the duplicate key is left to ignore); its affected rows are the
# rows inserted (with CLIENT_FOUND_ROWS, which SQLAlchemy sets, `ON DUPLICATE KEY UPDATE id = id` would count the
# rows found too).
_STATEMENTS: dict[OnConflict, str] = {
    "error": _INSERT,
    "skip": _INSERT.replace("INSERT", "INSERT IGNORE", 1),
    "update": _INSERT
    + " ON DUPLICATE KEY UPDATE name = VALUES(name), specialty = VALUES(specialty), updated_at = NOW(6),"
    " version = version + 1",
}


_TIMEOUT = text("SET SESSION max_statement_time = :seconds")


class MariaDBRows:
    """Writes an import's rows in `session`'s transaction (the job's), each statement within
    `statement_timeout_ms` (BULK_STATEMENT_TIMEOUT_MS) instead of the connection's DB_STATEMENT_TIMEOUT_MS, which is
    put back afterwards (`usual_ms`): MariaDB has no SET LOCAL."""

    def __init__(self, session: AsyncSession, *, statement_timeout_ms: int, usual_ms: int) -> None:
        self.session = session
        self.statement_timeout_ms = statement_timeout_ms
        self.usual_ms = usual_ms

    async def import_rows(self, chunks: AsyncIterable[list[Row]], on_conflict: OnConflict) -> BulkCreateResult:
        await self.session.execute(_TIMEOUT, {"seconds": self.statement_timeout_ms / 1000})
        try:
            return await self._write(chunks, on_conflict)
        finally:
            with contextlib.suppress(Exception):  # a lost connection takes its session's setting with it
                await self.session.execute(_TIMEOUT, {"seconds": self.usual_ms / 1000})

    async def _write(self, chunks: AsyncIterable[list[Row]], on_conflict: OnConflict) -> BulkCreateResult:
        statement = text(_STATEMENTS[on_conflict])
        total = affected = 0
        async for chunk in chunks:
            if not chunk:
                continue
            params = [{"name": name, "email": email, "specialty": specialty} for _, name, email, specialty in chunk]
            try:
                result = await self.session.execute(statement, params)
            except sa_exc.IntegrityError as exc:
                taken = duplicate_value(exc) or "an email"
                detail = f"{taken} already exists or repeats within the request; nothing was written"
                raise EmailsTaken(detail, []) from exc
            total += len(chunk)
            affected += int(result.rowcount)  # type: ignore[attr-defined]
        if on_conflict == "update":
            updated = affected - total
            return BulkCreateResult(created=total - updated, updated=updated, skipped=0)
        return BulkCreateResult(created=affected, updated=0, skipped=total - affected)
