"""The bulk statements on MariaDB: multi-row INSERTs (mariadb_writer.py), temporary tables where PostgreSQL
passes arrays, and the change feed's summary events written here (mariadb_events.py), not by triggers.

MariaDB has no UPDATE ... RETURNING, no arrays, no statement triggers; a statement that fails is undone alone
(no savepoint needed), and a bulk statement's time limit is set on the statement itself (SET STATEMENT
max_statement_time = ... FOR ...), so nothing lingers on the pooled connection. Only the email index can clash:
no statement here gives an id to a new row, so `ON DUPLICATE KEY` and `IGNORE` meet uq_developers_email_lower alone.

Round trips of an import: SET @devdir_bulk; per chunk of 10,000 rows one INSERT into the table and one of its
summary event (error mode), or one INSERT into the staging table (skip, update: created by the first); then for
skip and update one INSERT ... SELECT, one query of what it inserted and one INSERT of its event (update: two
more to read and clear the updates' tallies, one more event), one DROP; SET to clear; COMMIT.
A batch update: CREATE, one INSERT of the items, SET, the UPDATE, two for its tallies, its event (or one
query of the unwritten items instead), SET, DROP. A batch delete: SET, one DELETE ... RETURNING, its event, SET.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service.core.errors import REPORTED
from service.developers.bulk.conflicts import Conflict, emails_taken
from service.developers.bulk.dialect import BatchOutcome, Change
from service.developers.bulk.mariadb_events import aggregated, bulk_writes, summary, tallied_updates, write_event
from service.developers.bulk.mariadb_writer import STAGING, ChunkWriter
from service.developers.bulk.rows import Row
from service.developers.errors import EmailsTaken
from service.developers.schemas import BulkCreateResult, OnConflict

# skip mode: the first row of each email wins; rows go in lower(email) order, so concurrent imports take the
# unique index's locks in the same order and do not deadlock. IGNORE passes over duplicate keys (and would over
# any other refusal, which validated rows never meet: the parsers check every column's limits).
_INSERT = f"""
    INSERT IGNORE INTO developers (name, email, specialty)
    SELECT name, email, specialty FROM {STAGING} ORDER BY lower(email), row_no"""  # noqa: S608 (constants)
# The rows it wrote. One INSERT ... SELECT reserves its ids under the table's AUTO-INC lock (innodb_autoinc_lock_mode
# 0 or 1; MariaDB's default is 1), so no other row takes an id between its first (LAST_INSERT_ID) and its last.
_INSERTED = "SELECT id, specialty FROM developers WHERE id >= %s ORDER BY id LIMIT %s"
# update mode: repeated emails collapse to the last row sent, so a row is written once (version + 1, as on
# PostgreSQL). VALUES(col), not an `AS new` alias: asyncmy's multi-row rewrite, and MariaDB, want this form.
_UPSERT = f"""
    INSERT INTO developers (name, email, specialty)
    SELECT name, email, specialty FROM (
        SELECT name, email, specialty,
               ROW_NUMBER() OVER (PARTITION BY lower(email) ORDER BY row_no DESC) AS newest
        FROM {STAGING}) AS s
    WHERE newest = 1 ORDER BY lower(email)
    ON DUPLICATE KEY UPDATE name = VALUES(name), specialty = VALUES(specialty), updated_at = NOW(6),
        version = developers.version + 1"""  # noqa: S608 (constants)
# The rows it inserted: each email was written once, an existing row's version went from n to n + 1 (>= 2).
_UPSERTED = f"""
    SELECT d.id, d.specialty FROM developers d JOIN (SELECT DISTINCT lower(email) AS email_lower FROM {STAGING}) s
        ON d.email_lower = s.email_lower
    WHERE d.version = 1"""  # noqa: S608 (constants)
# As PostgreSQL's: rows 1..%s were written by this request, so a match in `developers` for an email whose first
# row is among them is this request's own row.
_CONFLICTS = f"""
    SELECT JSON_VALUE(JSON_ARRAYAGG(s.email ORDER BY s.row_no), '$[0]') AS email,
           JSON_ARRAYAGG(s.row_no ORDER BY s.row_no) AS rows_sent,
           MAX(d.id IS NOT NULL) AND MIN(s.row_no) > %s AS taken, COUNT(*) OVER () AS total
    FROM {STAGING} s LEFT JOIN developers d ON d.email_lower = lower(s.email)
    GROUP BY lower(s.email)
    HAVING COUNT(*) > 1 OR (MAX(d.id IS NOT NULL) AND MIN(s.row_no) > %s)
    ORDER BY MIN(s.row_no) LIMIT %s"""  # noqa: S608 (constants)

_CHANGES = "developers_changes"
_CREATE_CHANGES = f"""
    CREATE OR REPLACE TEMPORARY TABLE {_CHANGES} (
        id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(200), email VARCHAR(254), specialty VARCHAR(100),
        version BIGINT, written BOOLEAN NOT NULL DEFAULT FALSE
    ) ENGINE=InnoDB CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"""
_DROP_CHANGES = f"DROP TEMPORARY TABLE {_CHANGES}"
# NULL keeps a field, and as `version` accepts any version; the version is checked under the row lock the UPDATE
# takes. The items' own rows are marked, so the unwritten ones can be told apart after it.
_BATCH_UPDATE = f"""
    UPDATE developers d JOIN {_CHANGES} c ON d.id = c.id
    SET d.name = COALESCE(c.name, d.name), d.email = COALESCE(c.email, d.email),
        d.specialty = COALESCE(c.specialty, d.specialty), d.updated_at = NOW(6), d.version = d.version + 1,
        c.written = TRUE
    WHERE c.version IS NULL OR d.version = c.version"""  # noqa: S608 (constants)
# Only when fewer rows were written than items sent: ids with no row (404), rows at another version (412).
_UNWRITTEN = f"""
    SELECT missing, COUNT(*), JSON_ARRAYAGG(id ORDER BY id LIMIT %s) FROM (
        SELECT c.id, c.version IS NULL OR d.id IS NULL AS missing
        FROM {_CHANGES} c LEFT JOIN developers d ON d.id = c.id WHERE NOT c.written) AS u
    GROUP BY missing"""  # noqa: S608 (constants)


class MariaDBBulk:
    """service.developers.bulk.dialect.BulkSql on MariaDB."""

    async def import_rows(
        self,
        session: AsyncSession,
        first: list[Row],
        rest: AsyncIterator[list[Row]],
        on_conflict: OnConflict,
        timeout_ms: int,
    ) -> BulkCreateResult:
        connection = await session.connection()
        writer = ChunkWriter(connection, direct=on_conflict == "error", timeout=_timeout(timeout_ms))
        try:
            async with bulk_writes(connection):
                return await _import(connection, writer, first, rest, on_conflict, _timeout(timeout_ms))
        finally:
            await writer.close()

    async def update_many(self, session: AsyncSession, changes: list[Change], timeout_ms: int) -> BatchOutcome:
        connection = await session.connection()
        await connection.exec_driver_sql(_CREATE_CHANGES)
        try:
            await connection.exec_driver_sql(
                f"INSERT INTO {_CHANGES} (id, name, email, specialty, version) VALUES "  # noqa: S608 (constants)
                + ",".join(["(%s,%s,%s,%s,%s)"] * len(changes)),
                tuple(value for c in changes for value in (c.id, c.name, c.email, c.specialty, c.version)),
            )
            async with bulk_writes(connection):
                await connection.exec_driver_sql(_timeout(timeout_ms) + _BATCH_UPDATE)
                return await _updated(connection, len(changes))
        finally:
            await connection.exec_driver_sql(_DROP_CHANGES)

    async def delete_many(self, session: AsyncSession, ids: list[int]) -> tuple[int, list[int]]:
        connection = await session.connection()
        placeholders = ",".join(["%s"] * len(ids))
        async with bulk_writes(connection):
            result = await connection.exec_driver_sql(
                f"DELETE FROM developers WHERE id IN ({placeholders}) RETURNING id, specialty",  # noqa: S608
                tuple(ids),
            )
            returned: Sequence[Any] = result.all()
            deleted = {int(row[0]): str(row[1]) for row in returned}
            if deleted:
                await write_event(connection, summary("deleted", sorted(deleted), deleted.values()))
        return len(deleted), [id_ for id_ in ids if id_ not in deleted]


async def _import(
    connection: AsyncConnection,
    writer: ChunkWriter,
    first: list[Row],
    rest: AsyncIterator[list[Row]],
    on_conflict: OnConflict,
    limit: str,
) -> BulkCreateResult:
    await writer.write_all(first, rest)
    total = writer.rows
    if on_conflict == "update":
        await connection.exec_driver_sql(limit + _UPSERT)
        created = await aggregated(connection, "created", _UPSERTED, ())
        await write_event(connection, created)
        await write_event(connection, await tallied_updates(connection))
        return BulkCreateResult(created=created.count, updated=total - created.count, skipped=0)
    if on_conflict == "skip":
        result = await connection.exec_driver_sql(limit + _INSERT)
        created = await aggregated(connection, "created", _INSERTED, (result.lastrowid, result.rowcount))
        await write_event(connection, created)
        return BulkCreateResult(created=created.count, updated=0, skipped=total - created.count)
    if writer.inserted < total:
        raise await _conflicts(connection, writer.inserted)
    return BulkCreateResult(created=total, updated=0, skipped=0)


async def _conflicts(connection: AsyncConnection, inserted: int) -> EmailsTaken:
    rows: Sequence[Any] = (await connection.exec_driver_sql(_CONFLICTS, (inserted, inserted, REPORTED))).all()
    conflicts: list[Conflict] = [(str(row[0]), _json_ints(row[1]), bool(row[2])) for row in rows]
    return emails_taken(conflicts, int(rows[0][3]) if rows else 0)


async def _updated(connection: AsyncConnection, total: int) -> BatchOutcome:
    """What the batch UPDATE wrote; its event when it wrote every item's row (else the request fails)."""
    written = await tallied_updates(connection)
    if written.count == total:
        await write_event(connection, written)
        return BatchOutcome(written.count)
    rows: Sequence[Any] = (await connection.exec_driver_sql(_UNWRITTEN, (REPORTED,))).all()
    unwritten = {bool(row[0]): (int(row[1]), tuple(_json_ints(row[2]))) for row in rows}
    missing, missing_ids = unwritten.get(True, (0, ()))
    stale, stale_ids = unwritten.get(False, (0, ()))
    return BatchOutcome(written.count, missing, missing_ids, stale, stale_ids)


def _timeout(timeout_ms: int) -> str:
    """A bulk statement's own time limit (BULK_STATEMENT_TIMEOUT_MS; 0: none), instead of the session's."""
    return f"SET STATEMENT max_statement_time = {timeout_ms / 1000:.3f} FOR " if timeout_ms else ""


def _json_ints(value: object) -> list[int]:
    return list(msgspec.json.decode(value if isinstance(value, (str, bytes)) else str(value), type=list[int]))
