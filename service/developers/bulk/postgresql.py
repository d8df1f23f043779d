"""The bulk statements on PostgreSQL: COPY (copy_writer.py), one INSERT ... ON CONFLICT, arrays for batches.

Round trips of an import: BEGIN, set_config, then per chunk of 10,000 rows either SAVEPOINT, COPY into the
table, one SELECT of the chunk's transaction id, RELEASE (on_conflict=error), or one COPY into the staging table
(skip, update: created by the first, with one CREATE TEMP TABLE), then for skip and update one
INSERT ... SELECT ... ON CONFLICT; COMMIT.
A batch update or delete: BEGIN, one statement, COMMIT (an update sets its statement timeout first).
Statement-level triggers (migration 0004) write the change feed's events: one per statement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from service.core.errors import REPORTED
from service.developers.bulk.conflicts import emails_taken
from service.developers.bulk.copy_writer import STAGING, CopyWriter
from service.developers.bulk.dialect import BatchOutcome, Change
from service.developers.bulk.rows import Row
from service.developers.errors import EmailsTaken
from service.developers.schemas import BulkCreateResult, OnConflict

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


class PostgresBulk:
    """service.developers.bulk.dialect.BulkSql on PostgreSQL."""

    async def import_rows(
        self,
        session: AsyncSession,
        first: list[Row],
        rest: AsyncIterator[list[Row]],
        on_conflict: OnConflict,
        timeout_ms: int,
    ) -> BulkCreateResult:
        """on_conflict=error, the default, takes the fastest path: each chunk is COPYed straight into
        `developers`, so the unique index finds the conflicts and no INSERT ... SELECT is needed; after a conflict
        the rest is staged for the 409's diagnostics. skip and update stage every chunk, then write them all with
        one INSERT ... ON CONFLICT."""
        writer = CopyWriter(await _driver(session, timeout_ms), direct=on_conflict == "error")
        await writer.write_all(first, rest)
        total, inserted = writer.rows, writer.inserted
        if on_conflict == "update":
            created = cast(int, (await session.execute(_UPSERT)).scalar_one())
            return BulkCreateResult(created=created, updated=total - created, skipped=0)
        if on_conflict == "skip":
            result = await session.execute(_INSERT)
            created = cast(int, result.rowcount)  # type: ignore[attr-defined]
            return BulkCreateResult(created=created, updated=0, skipped=total - created)
        if inserted < total:
            raise await _conflicts(session, inserted)
        return BulkCreateResult(created=total, updated=0, skipped=0)

    async def update_many(self, session: AsyncSession, changes: list[Change], timeout_ms: int) -> BatchOutcome:
        params = {
            "ids": [change.id for change in changes],
            "names": [change.name for change in changes],
            "emails": [change.email for change in changes],
            "specialties": [change.specialty for change in changes],
            "versions": [change.version for change in changes],
            "total": len(changes),
            "reported": REPORTED,
        }
        await session.execute(_STATEMENT_TIMEOUT, {"ms": str(timeout_ms)})
        updated, missing, missing_ids, stale, stale_ids = (await session.execute(_BATCH_UPDATE, params)).one()
        return BatchOutcome(updated, missing or 0, tuple(missing_ids or ()), stale or 0, tuple(stale_ids or ()))

    async def delete_many(self, session: AsyncSession, ids: list[int]) -> tuple[int, list[int]]:
        deleted, not_found = (await session.execute(_BULK_DELETE, {"ids": ids})).one()
        return deleted, list(not_found)


async def _driver(session: AsyncSession, timeout_ms: int) -> asyncpg.Connection:
    # The first statement through SQLAlchemy opens the transaction; COPY on the raw connection then joins it.
    await session.execute(_STATEMENT_TIMEOUT, {"ms": str(timeout_ms)})
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = cast(asyncpg.Connection, raw.driver_connection)
    assert driver.is_in_transaction()
    return driver


async def _conflicts(session: AsyncSession, inserted: int) -> EmailsTaken:
    rows = (await session.execute(_CONFLICTS, {"inserted": inserted, "reported": REPORTED})).all()
    conflicts = [(email, row_numbers, taken) for email, row_numbers, taken, _ in rows]
    return emails_taken(conflicts, rows[0].total if rows else 0)
