"""The bulk service: imports, batch updates and deletes, all or nothing; no HTTP here.

No bulk row ever becomes an ORM object: rows arrive as tuples and go to the server in chunks, and set-based
statements do the work. Which statements, is the server's (dialect.BulkSql: postgresql.py, mariadb.py, chosen
once in servers.py); what a client sent is checked here, before any SQL, and what the statements found becomes
the answer here, the same on both servers. The request's session supplies the connection and the transaction,
so the SQLAlchemy plugin still commits on success and rolls back on any error.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable
from typing import Any

import msgspec
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from service.core.errors import REPORTED
from service.db import isolation
from service.db.errors import duplicate_value, violated_constraint
from service.db.models import DEVELOPERS_EMAIL_INDEX
from service.developers.bulk.dialect import BulkSql, Change
from service.developers.bulk.rows import Row
from service.developers.errors import DevelopersNotFound, EmailsTaken, InvalidRows, StaleDevelopers, TooManyRows
from service.developers.etags import tag_version
from service.developers.schemas import (
    BatchUpdateResult,
    BulkCreateResult,
    BulkDeleteResult,
    DeveloperBatchUpdate,
    OnConflict,
)
from service.observability.instruments import BulkMetrics


class DevelopersBulkService:
    def __init__(
        self,
        session: AsyncSession,
        sql: BulkSql,
        *,
        max_rows: int,
        statement_timeout_ms: int,
        metrics: BulkMetrics | None = None,
    ) -> None:
        self.session = session
        self.sql = sql  # the server's statements (servers.bulk_sql)
        self.max_rows = max_rows  # rows one request may write (TooManyRows beyond)
        self.statement_timeout_ms = statement_timeout_ms
        self.metrics = metrics

    def _when_committed(self, count: Callable[[BulkMetrics], None]) -> None:
        """Count a write in the metrics once its transaction commits (the caller's: a route's, a job's); a
        write rolled back is never counted."""
        metrics = self.metrics
        if metrics is not None:
            event.listen(self.session.sync_session, "after_commit", lambda _session: count(metrics), once=True)

    async def import_rows(self, chunks: AsyncIterable[list[Row]], on_conflict: OnConflict) -> BulkCreateResult:
        """Write the rows of `chunks` as they arrive, chunk by chunk (the parsers stop at `max_rows`); EmailsTaken
        in error mode when an email exists or repeats, with nothing written.

        An error from `chunks` (a bad row, a client gone mid-stream) propagates and the whole transaction is
        rolled back.
        """
        started = time.monotonic()
        iterator = aiter(chunks)
        first = await anext((chunk async for chunk in iterator if chunk), None)
        if first is None:
            return BulkCreateResult(created=0, updated=0, skipped=0)
        # The connection is taken only now that there is a valid row to write. (A worker's import joins the
        # transaction its job began, at the same level.)
        await isolation.begin(self.session, "developers.import")
        result = await self.sql.import_rows(self.session, first, iterator, on_conflict, self.statement_timeout_ms)
        total = result.created + result.updated + result.skipped
        self._when_committed(lambda metrics: metrics.imported(on_conflict, total, started))
        return result

    async def update_many(self, items: list[DeveloperBatchUpdate]) -> BatchUpdateResult:
        _check_items(items, self.max_rows)
        if not items:
            return BatchUpdateResult(updated=0)
        if repeated := _repeated_emails(items):
            raise EmailsTaken(
                f"{len(repeated)} email(s) are given to more than one item; nothing was written", repeated
            )
        changes = [_change(item) for item in items]
        await isolation.begin(self.session, "developers.update_many")
        try:
            outcome = await self.sql.update_many(self.session, changes, self.statement_timeout_ms)
        except sa_exc.IntegrityError as exc:
            if violated_constraint(exc) == DEVELOPERS_EMAIL_INDEX:
                raise _email_clash(exc, items) from exc
            raise
        updated, missing, missing_ids = outcome.updated, outcome.missing, outcome.missing_ids
        stale, stale_ids = outcome.stale, outcome.stale_ids
        if missing:
            raise DevelopersNotFound(
                f"{missing} id(s) name no developer; nothing was written", [{"id": id_} for id_ in missing_ids]
            )
        if stale:
            raise StaleDevelopers(
                f"{stale} developer(s) are not at the version their item's if_match names: they have changed since; "
                "nothing was written",
                [{"id": id_} for id_ in stale_ids],
            )
        self._when_committed(lambda metrics: metrics.changed("update", updated))
        return BatchUpdateResult(updated=updated)

    async def delete_many(self, ids: list[int]) -> BulkDeleteResult:
        if len(ids) > self.max_rows:
            raise TooManyRows(self.max_rows)
        ids = sorted(set(ids))  # each id once, so `not_found` names a missing id once
        if not ids:
            return BulkDeleteResult(deleted=0, not_found=[])
        await isolation.begin(self.session, "developers.delete_many")
        deleted, not_found = await self.sql.delete_many(self.session, ids)
        self._when_committed(lambda metrics: metrics.changed("delete", deleted))
        return BulkDeleteResult(deleted=deleted, not_found=not_found)


def _change(item: DeveloperBatchUpdate) -> Change:
    given = item.changes()
    return Change(item.id, given.get("name"), given.get("email"), given.get("specialty"), _version(item))


def _version(item: DeveloperBatchUpdate) -> int | None:
    """The version an item's `if_match` accepts: None without one, 0 (no row has it) for a tag that cannot match."""
    if item.if_match is msgspec.UNSET:
        return None
    return tag_version(item.if_match, item.id) or 0


def _check_items(items: list[DeveloperBatchUpdate], max_rows: int) -> None:
    """Refuse a batch that is too large, or has an item repeating an id or changing nothing, before any SQL."""
    if len(items) > max_rows:
        raise TooManyRows(max_rows)
    problems: list[dict[str, Any]] = []
    seen: set[int] = set()
    for row, item in enumerate(items, 1):
        if item.id in seen:
            problems.append(
                {"row": row, "key": "id", "source": "body", "message": f"id {item.id} appears more than once"}
            )
        elif not item.changes():
            message = "no field to change: give name, email or specialty"
            problems.append({"row": row, "key": None, "source": "body", "message": message})
        seen.add(item.id)
    if problems:
        raise InvalidRows("invalid items; nothing was written", problems[:REPORTED])


def _repeated_emails(items: list[DeveloperBatchUpdate]) -> list[dict[str, Any]]:
    # Caught here to name every item involved; the server's lower() is the final judge (the unique index).
    rows: dict[str, list[int]] = {}
    for row, item in enumerate(items, 1):
        if isinstance(item.email, str):
            rows.setdefault(item.email.lower(), []).append(row)
    return [
        {"email": items[numbers[0] - 1].email, "rows": numbers, "reason": "repeated"}
        for numbers in rows.values()
        if len(numbers) > 1
    ][:REPORTED]


def _email_clash(exc: sa_exc.IntegrityError, items: list[DeveloperBatchUpdate]) -> EmailsTaken:
    # The server reports the first clash it met, as the unique index's value: lower(email).
    key = duplicate_value(exc) or ""
    rows = [row for row, item in enumerate(items, 1) if isinstance(item.email, str) and item.email.lower() == key]
    extra = [{"email": items[rows[0] - 1].email if rows else key, "rows": rows, "reason": "taken"}] if key else []
    return EmailsTaken("an email in the batch belongs to another developer; nothing was written", extra)
