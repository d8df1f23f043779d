"""The chunk writer of imports on MariaDB: multi-row INSERTs straight into `developers` in error mode, into a
temporary staging table (`developers_import`) otherwise.

A chunk goes as few multi-row `INSERT ... VALUES` statements as fit MAX_STATEMENT_CHARS each (one for 10,000
rows of usual size): asyncmy escapes the values, and the server parses one statement instead of one per row.
Measured against the alternatives in docs/benchmarks.md. As on PostgreSQL, a chunk is written by a task of its
own while the next one is parsed: memory holds two chunks, whatever the import's size.

In error mode the unique index finds conflicts. A statement that fails is undone by InnoDB alone (statements are
atomic), so no savepoint is needed. Each statement's rows have consecutive ids (innodb_autoinc_lock_mode 0 or 1,
MariaDB's default 1: a multi-row INSERT reserves its ids in one block), so the rows this request wrote are known by
their id ranges; on the first conflict they, the rest of the failed chunk, and every chunk after it are staged,
so the 409 can name the first conflicting emails of the whole request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.errors import violated_constraint
from service.db.models import DEVELOPERS_EMAIL_INDEX
from service.developers.bulk.mariadb_events import summary, write_event
from service.developers.bulk.rows import Row

STAGING = "developers_import"  # the import's statements read it by this name
MAX_STATEMENT_CHARS = 2_000_000  # at most 8 MB of UTF-8: half of max_allowed_packet (16 MB by default)
# A temporary table lives in this session only; MariaDB keeps it until the session ends, so the import drops it
# when it ends (`close`), and replaces one a lost DROP would have left behind.
CREATE_STAGING = f"""
    CREATE OR REPLACE TEMPORARY TABLE {STAGING} (
        row_no BIGINT NOT NULL, name VARCHAR(200) NOT NULL, email VARCHAR(254) NOT NULL,
        specialty VARCHAR(100) NOT NULL
    ) ENGINE=InnoDB CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"""
DROP_STAGING = f"DROP TEMPORARY TABLE {STAGING}"


class ChunkWriter:
    """Writes chunks through the request's connection, inside its transaction."""

    def __init__(self, connection: AsyncConnection, *, direct: bool, timeout: str) -> None:
        self.connection = connection
        self.direct = direct  # INSERT into `developers`, until the first conflict
        self.timeout = timeout  # "SET STATEMENT max_statement_time = ... FOR ", or ""
        self.rows = 0  # rows written, to the table or the staging table
        self.inserted = 0  # rows 1..inserted are in `developers`
        self.ranges: list[tuple[int, int]] = []  # (first id, last id) of each statement into `developers`
        self._staging = False

    async def write_all(self, first: list[Row], rest: AsyncIterator[list[Row]]) -> None:
        """Write `first`, then each chunk of `rest` as it comes; an error from `rest` propagates once the chunk
        in flight is written, so the connection is idle when the transaction rolls back."""
        writing = asyncio.create_task(self._write(first))
        try:
            async for chunk in rest:
                if chunk:
                    await writing
                    writing = asyncio.create_task(self._write(chunk))
            await writing
        finally:
            await asyncio.wait([writing])
            del writing  # its exception's traceback would hold this frame, and the rows, in a cycle

    async def _write(self, chunk: list[Row]) -> None:
        if self.direct:
            written = len(self.ranges)
            done = await self._insert_into_table(chunk)
            if done == len(chunk):  # one event per chunk, as for one COPY on PostgreSQL
                ids = [id_ for first, last in self.ranges[written:] for id_ in range(first, last + 1)]
                await write_event(self.connection, summary("created", ids, (row[3] for row in chunk)))
                return
            self.direct = False
            await self._create_staging()
            await self._stage_written()
            chunk = chunk[done:]
        if not self._staging:
            await self._create_staging()
        for sql, params in _statements(f"INSERT INTO {STAGING} (row_no, name, email, specialty)", chunk, True):
            await self.connection.exec_driver_sql(sql, params)
        self.rows += len(chunk)

    async def _insert_into_table(self, chunk: list[Row]) -> int:
        """Rows of `chunk` written to `developers`, all of them unless an email is taken or repeated: then those
        before the statement that met it."""
        done = 0
        for sql, params in _statements(f"{self.timeout}INSERT INTO developers (name, email, specialty)", chunk):
            try:
                result = await self.connection.exec_driver_sql(sql, params)
            except sa_exc.IntegrityError as exc:
                if violated_constraint(exc) != DEVELOPERS_EMAIL_INDEX:
                    raise
                return done
            count = len(params) // 3
            self.ranges.append((result.lastrowid, result.lastrowid + count - 1))
            done += count
            self.rows = self.inserted = self.rows + count
        return done

    async def close(self) -> None:
        """Drop the staging table, if one was made: the pooled connection would keep it."""
        if self._staging:
            self._staging = False
            await self.connection.exec_driver_sql(DROP_STAGING)

    async def _create_staging(self) -> None:
        await self.connection.exec_driver_sql(CREATE_STAGING)
        self._staging = True

    async def _stage_written(self) -> None:
        """Stage this request's rows in `developers`, numbered 1..inserted in id order (their order sent)."""
        if not self.ranges:
            return
        where = " OR ".join("id BETWEEN %s AND %s" for _ in self.ranges)
        params = tuple(bound for id_range in self.ranges for bound in id_range)
        await self.connection.exec_driver_sql(
            f"INSERT INTO {STAGING} (row_no, name, email, specialty) "  # noqa: S608 (constants and placeholders)
            f"SELECT ROW_NUMBER() OVER (ORDER BY id), name, email, specialty FROM developers WHERE {where}",
            params,
        )


def _statements(prefix: str, chunk: list[Row], numbered: bool = False) -> Iterator[tuple[str, tuple[object, ...]]]:
    """Multi-row `prefix VALUES (...), (...)` statements for `chunk`, of MAX_STATEMENT_CHARS at most each."""
    placeholder = "(%s,%s,%s,%s)" if numbered else "(%s,%s,%s)"
    params: list[object] = []
    rows = size = 0
    for row in chunk:
        params.extend(row if numbered else row[1:])
        rows += 1
        size += len(row[1]) + len(row[2]) + len(row[3]) + 32  # quotes, commas, escapes, the row number
        if size >= MAX_STATEMENT_CHARS:
            yield f"{prefix} VALUES {','.join([placeholder] * rows)}", tuple(params)
            params, rows, size = [], 0, 0
    if params:
        yield f"{prefix} VALUES {','.join([placeholder] * rows)}", tuple(params)
