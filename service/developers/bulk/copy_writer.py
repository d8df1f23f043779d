"""The COPY writer of imports: chunks of rows straight into `developers` in error mode, into a staging table
(`developers_import`, temporary) otherwise.

The writes of one chunk run in a task of their own while the request goes on parsing the next chunk, so
PostgreSQL's work (index maintenance, mostly) overlaps Python's (decoding and validating rows). At most one
chunk is in flight and one is being parsed, so memory stays at two chunks whatever the import's size.

In error mode each chunk is COPYed into `developers` inside a savepoint, so the unique index itself finds
conflicts and a clean import costs one COPY per chunk. The staging table is filled only once a conflict
appears: with the rows this request already wrote (found by the subtransaction that wrote each chunk), the
chunk that failed, and every chunk after it, so the 409 can name the first conflicting emails of the whole
request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from contextlib import aclosing

import asyncpg

from service.db.connection_lost import until_lost
from service.db.models import DEVELOPERS_EMAIL_INDEX
from service.developers.bulk.rows import Row

STAGING = "developers_import"  # the import service's statements read it by this name
# A temporary table lives in this session only and is never WAL-logged; ON COMMIT DROP (and a rollback undoing
# the CREATE) means a pooled connection never carries it into the next request.
_CREATE_STAGING = f"""
    CREATE TEMP TABLE {STAGING} (
        row_no bigint NOT NULL, name text NOT NULL, email text NOT NULL, specialty text NOT NULL
    ) ON COMMIT DROP"""
STAGING_COLUMNS = ("row_no", "name", "email", "specialty")
TABLE_COLUMNS = ("name", "email", "specialty")
# The subtransaction that wrote the row this session inserted last: every row of one COPY shares it. (currval
# is volatile: as a scalar subquery it is computed once and the primary key finds the row.)
_CHUNK_XID = "SELECT xmin FROM developers WHERE id = (SELECT currval(pg_get_serial_sequence('developers', 'id')))"
# Rows written by this request number 1..n in id order: one COPY assigns ids in row order. (A scan of the table,
# but only on the way to a 409.)
_STAGE_WRITTEN = f"""
    INSERT INTO {STAGING} (row_no, name, email, specialty)
    SELECT row_number() OVER (ORDER BY id), name, email, specialty FROM developers WHERE xmin = ANY($1::xid[])"""  # noqa: S608 (STAGING is a constant)


class CopyWriter:
    """Writes chunks on one asyncpg connection, inside the request's transaction."""

    def __init__(self, driver: asyncpg.Connection, *, direct: bool) -> None:
        self.driver = driver
        self.direct = direct  # COPY into `developers`, until the first conflict
        self.rows = 0  # rows written, to the table or the staging table
        self.inserted = 0  # rows 1..inserted are in `developers`
        self._xids: list[int] = []  # the subtransaction of each chunk COPYed into `developers`
        self._staging = False  # whether the staging table exists (created on first use)

    async def write_all(self, first: list[Row], rest: AsyncIterable[list[Row]]) -> None:
        """Write `first`, then each chunk of `rest` as it comes; an error from `rest` propagates once the chunk
        in flight is written, so the connection is idle when the transaction rolls back. If the connection is
        lost while the next chunk is awaited, that wait ends at once (service.db.connection_lost)."""
        writing = asyncio.create_task(self._write(first))
        try:
            async with aclosing(until_lost(self.driver, rest)) as chunks:
                async for chunk in chunks:
                    if chunk:
                        await writing
                        writing = asyncio.create_task(self._write(chunk))
            await writing  # an error from the last chunk's write
        finally:
            await asyncio.wait([writing])
            # A failed task keeps its exception, whose traceback holds this frame: kept here, the task would close
            # a reference cycle that holds the rows until the garbage collector's next full pass.
            del writing

    async def _write(self, chunk: list[Row]) -> None:
        if self.direct:
            if await self._copy_into_table(chunk):
                self.rows = self.inserted = self.rows + len(chunk)
                return
            self.direct = False
            await self._create_staging()
            if self._xids:
                await self.driver.execute(_STAGE_WRITTEN, self._xids)
        if not self._staging:
            await self._create_staging()
        await self.driver.copy_records_to_table(STAGING, records=chunk, columns=STAGING_COLUMNS)
        self.rows += len(chunk)

    async def _create_staging(self) -> None:
        await self.driver.execute(_CREATE_STAGING)
        self._staging = True

    async def _copy_into_table(self, chunk: list[Row]) -> bool:
        """COPY into `developers`; False, with nothing of the chunk kept, if an email is taken or repeated."""
        await self.driver.execute("SAVEPOINT import_chunk")
        try:
            records = [row[1:] for row in chunk]
            await self.driver.copy_records_to_table("developers", records=records, columns=TABLE_COLUMNS)
        except asyncpg.UniqueViolationError as exc:
            await self.driver.execute("ROLLBACK TO SAVEPOINT import_chunk")
            if exc.constraint_name != DEVELOPERS_EMAIL_INDEX:
                raise
            return False
        self._xids.append(await self.driver.fetchval(_CHUNK_XID))
        await self.driver.execute("RELEASE SAVEPOINT import_chunk")
        return True
