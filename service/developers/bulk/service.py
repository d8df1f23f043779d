"""The bulk service: imports by COPY, batch updates and deletes as single statements; no HTTP here.

No bulk row ever becomes an ORM object: rows arrive as tuples, go to PostgreSQL by binary COPY or as array
parameters, and one set-based statement does the work. The request's session supplies the connection and the
transaction, so the SQLAlchemy plugin still commits on success and rolls back on any error; COPY needs asyncpg
itself, reached through the session's own connection, inside that same transaction.

Round trips of an import: BEGIN, set_config, then per chunk of 10,000 rows either SAVEPOINT, COPY into the
table, one SELECT of the chunk's transaction id, RELEASE (on_conflict=error), or one COPY into the staging table
(skip, update: created by the first, with one CREATE TEMP TABLE), then for skip and update one
INSERT ... SELECT ... ON CONFLICT; COMMIT.
A batch update or delete: BEGIN, one statement, COMMIT (an update sets its statement timeout first).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable
from typing import Any, cast

import asyncpg
import msgspec
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from service.core.errors import REPORTED
from service.db import isolation
from service.db.errors import driver_error, violated_constraint
from service.db.models import DEVELOPERS_EMAIL_INDEX
from service.developers.bulk.copy_writer import STAGING, CopyWriter
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

_STATEMENT_TIMEOUT = text("SELECT set_config('statement_timeout', :ms, true)")

# skip mode. Rows go in lower(email) order: concurrent imports then take the unique index's locks in the same
# order, which keeps them from deadlocking on each other's emails.
_INSERT = text(f"""
    INSERT INTO developers (name, email, specialty)
    SELECT name, email, specialty FROM {STAGING} ORDER BY lower(email), row_no
    ON CONFLICT ((lower(email))) DO NOTHING""")  # noqa: S608 (STAGING is a constant)
# ON CONFLICT DO UPDATE may touch a row once per statement, so repeated emails collapse to the last one sent.
# `xmax = 0` is true for rows this statement inserted and false for rows it updated. (SQL text: the model's
# onupdate does not apply, so updated_at is set here; every UPDATE increments the row's version, the ETag's.)
_UPSERT = text(f"""
    WITH written AS (
        INSERT INTO developers (name, email, specialty)
        SELECT DISTINCT ON (lower(email)) name, email, specialty FROM {STAGING}
        ORDER BY lower(email), row_no DESC
        ON CONFLICT ((lower(email))) DO UPDATE
        SET name = excluded.name, specialty = excluded.specialty, updated_at = now(),
            version = developers.version + 1
        RETURNING xmax = 0 AS inserted)
    SELECT count(*) FILTER (WHERE inserted) FROM written""")  # noqa: S608 (STAGING is a constant)
# Why an import in error mode failed: emails repeated in the payload, or in the table before this request.
# Rows 1..:inserted were COPYed in by this request without conflict, so an email whose first row is among them
# was not in the table before: a match in `developers` for it is this request's own row.
_CONFLICTS = text(f"""
    SELECT (array_agg(s.email ORDER BY s.row_no))[1] AS email, array_agg(s.row_no ORDER BY s.row_no) AS rows,
           bool_or(d.id IS NOT NULL) AND min(s.row_no) > :inserted AS taken, count(*) OVER () AS total
    FROM {STAGING} s LEFT JOIN developers d ON lower(d.email) = lower(s.email)
    GROUP BY lower(s.email)
    HAVING count(*) > 1 OR (bool_or(d.id IS NOT NULL) AND min(s.row_no) > :inserted)
    ORDER BY min(s.row_no) LIMIT :reported""")  # noqa: S608 (STAGING is a constant)

# One UPDATE ... FROM over arrays: NULL in an array means "keep the current value" (the API has no nulls), and in
# `versions` "whatever the version" (an item without `if_match`); an item's version is checked under the row lock the
# UPDATE takes, in the same statement. (SQL text: the model's onupdate does not apply, so updated_at is set here.)
# Only when fewer rows were written than items were sent are the others looked at: ids with no row (404), or
# rows at another version (412). The main query sees `developers` as it was before the UPDATE (one snapshot for
# every part of a WITH), and its CASE evaluates those subqueries only then.
_BATCH_UPDATE = text("""
    WITH changes AS (
        SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:names AS text[]), CAST(:emails AS text[]),
                             CAST(:specialties AS text[]), CAST(:versions AS bigint[]))
            AS c(id, name, email, specialty, version)),
    updated AS (
        UPDATE developers d
        SET name = coalesce(c.name, d.name), email = coalesce(c.email, d.email),
            specialty = coalesce(c.specialty, d.specialty), updated_at = now(), version = d.version + 1
        FROM changes c WHERE d.id = c.id AND (c.version IS NULL OR d.version = c.version)
        RETURNING d.id),
    written AS (SELECT count(*) AS n FROM updated),
    unwritten AS (
        SELECT c.id, c.version IS NULL OR NOT EXISTS (SELECT 1 FROM developers d WHERE d.id = c.id) AS missing
        FROM changes c WHERE NOT EXISTS (SELECT 1 FROM updated u WHERE u.id = c.id))
    SELECT n,
           CASE WHEN n < :total THEN (SELECT count(*) FILTER (WHERE missing) FROM unwritten) END,
           CASE WHEN n < :total THEN ARRAY(SELECT id FROM unwritten WHERE missing ORDER BY id LIMIT :reported) END,
           CASE WHEN n < :total THEN (SELECT count(*) FILTER (WHERE NOT missing) FROM unwritten) END,
           CASE WHEN n < :total THEN ARRAY(SELECT id FROM unwritten WHERE NOT missing ORDER BY id LIMIT :reported) END
    FROM written""")
_BULK_DELETE = text("""
    WITH deleted AS (DELETE FROM developers WHERE id = ANY(CAST(:ids AS bigint[])) RETURNING id)
    SELECT (SELECT count(*) FROM deleted),
           ARRAY(SELECT id FROM unnest(CAST(:ids AS bigint[])) AS id EXCEPT SELECT id FROM deleted ORDER BY 1)""")


class DevelopersBulkService:
    def __init__(
        self, session: AsyncSession, *, max_rows: int, statement_timeout_ms: int, metrics: BulkMetrics | None = None
    ) -> None:
        self.session = session
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
        """Write the rows of `chunks` as they arrive (see copy_writer.CopyWriter); the parsers stop at `max_rows`.

        on_conflict=error, the default, takes the fastest path: each chunk is COPYed straight into `developers`,
        so the unique index finds the conflicts and no INSERT ... SELECT is needed; after a conflict the rest is
        staged for the 409's diagnostics. skip and update stage every chunk, then write them all with one
        INSERT ... ON CONFLICT.

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
        writer = CopyWriter(await self._driver(), direct=on_conflict == "error")
        await writer.write_all(first, iterator)
        total, inserted = writer.rows, writer.inserted
        self._when_committed(lambda metrics: metrics.imported(on_conflict, total, started))
        if on_conflict == "update":
            created = cast(int, (await self.session.execute(_UPSERT)).scalar_one())
            return BulkCreateResult(created=created, updated=total - created, skipped=0)
        if on_conflict == "skip":
            result = await self.session.execute(_INSERT)
            created = cast(int, result.rowcount)  # type: ignore[attr-defined]
            return BulkCreateResult(created=created, updated=0, skipped=total - created)
        if inserted < total:
            raise await self._conflicts(inserted)
        return BulkCreateResult(created=total, updated=0, skipped=0)

    async def _driver(self) -> asyncpg.Connection:
        # The first statement through SQLAlchemy opens the transaction; COPY on the raw connection then joins it.
        await self.session.execute(_STATEMENT_TIMEOUT, {"ms": str(self.statement_timeout_ms)})
        connection = await self.session.connection()
        raw = await connection.get_raw_connection()
        driver = cast(asyncpg.Connection, raw.driver_connection)
        assert driver.is_in_transaction()
        return driver

    async def _conflicts(self, inserted: int) -> EmailsTaken:
        rows = (await self.session.execute(_CONFLICTS, {"inserted": inserted, "reported": REPORTED})).all()
        if not rows:  # the clashing row was committed by a concurrent request after the INSERT looked
            return EmailsTaken("a concurrent request wrote one of these emails; nothing was written", [])
        extra = [
            {"email": email, "rows": list(row_numbers), "reason": "taken" if taken else "repeated"}
            for email, row_numbers, taken, _ in rows
        ]
        total = rows[0].total
        shown = f" (the first {REPORTED} are listed)" if total > REPORTED else ""
        detail = f"{total} email(s) already exist or repeat within the request{shown}; nothing was written"
        return EmailsTaken(detail, extra)

    async def update_many(self, items: list[DeveloperBatchUpdate]) -> BatchUpdateResult:
        _check_items(items, self.max_rows)
        if not items:
            return BatchUpdateResult(updated=0)
        if repeated := _repeated_emails(items):
            raise EmailsTaken(
                f"{len(repeated)} email(s) are given to more than one item; nothing was written", repeated
            )
        params: dict[str, Any] = {"ids": [], "names": [], "emails": [], "specialties": [], "versions": []}
        for item in items:
            params["ids"].append(item.id)
            given = item.changes()
            params["names"].append(given.get("name"))
            params["emails"].append(given.get("email"))
            params["specialties"].append(given.get("specialty"))
            params["versions"].append(_version(item))
        params |= {"total": len(items), "reported": REPORTED}
        await isolation.begin(self.session, "developers.update_many")
        await self.session.execute(_STATEMENT_TIMEOUT, {"ms": str(self.statement_timeout_ms)})
        try:
            updated, missing, missing_ids, stale, stale_ids = (await self.session.execute(_BATCH_UPDATE, params)).one()
        except sa_exc.IntegrityError as exc:
            if violated_constraint(exc) == DEVELOPERS_EMAIL_INDEX:
                raise _email_clash(exc, items) from exc
            raise
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
        row = (await self.session.execute(_BULK_DELETE, {"ids": ids})).one()
        deleted: int = row[0]
        self._when_committed(lambda metrics: metrics.changed("delete", deleted))
        return BulkDeleteResult(deleted=row[0], not_found=list(row[1]))


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
    # Caught here to name every item involved; PostgreSQL's lower() is the final judge (the unique index).
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
    # PostgreSQL reports the first clash it met: "Key (lower(email))=(ada@x.io) already exists."
    detail = getattr(driver_error(exc), "detail", None) or ""
    key = detail.partition(")=(")[2].rpartition(") already exists")[0]
    rows = [row for row, item in enumerate(items, 1) if isinstance(item.email, str) and item.email.lower() == key]
    extra = [{"email": items[rows[0] - 1].email if rows else key, "rows": rows, "reason": "taken"}] if key else []
    return EmailsTaken("an email in the batch belongs to another developer; nothing was written", extra)
