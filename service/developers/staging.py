"""COPY of import chunks: into the staging table always, and straight into `developers` in error mode.

The writes of one chunk run in a task of their own while the request goes on parsing the next chunk, so
PostgreSQL's work (index maintenance, mostly) overlaps Python's (decoding and validating rows). At most one
chunk is in flight and one is being parsed, so memory stays at two chunks whatever the import's size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable

import asyncpg

from service.developers.service import EMAIL_INDEX

# (row number as the client sent it, name, email, specialty): validated, ready for COPY.
Row = tuple[int, str, str, str]

STAGING = "developers_import"  # the statements in bulk.py name it too
STAGING_COLUMNS = ("row_no", "name", "email", "specialty")
TABLE_COLUMNS = ("name", "email", "specialty")


class ChunkWriter:
    """Writes chunks on one asyncpg connection, inside the request's transaction."""

    def __init__(self, driver: asyncpg.Connection, *, direct: bool) -> None:
        self.driver = driver
        self.direct = direct  # COPY into `developers` too, until the first conflict
        self.staged = 0  # rows 1..staged are in the staging table
        self.inserted = 0  # rows 1..inserted are in `developers`

    async def write_all(self, first: list[Row], rest: AsyncIterable[list[Row]]) -> None:
        """Write `first`, then each chunk of `rest` as it comes; an error from `rest` propagates once the chunk
        in flight is written, so the connection is idle when the transaction rolls back."""
        writing = asyncio.create_task(self._write(first))
        try:
            async for chunk in rest:
                if chunk:
                    await writing
                    writing = asyncio.create_task(self._write(chunk))
        finally:
            await asyncio.wait([writing])
        writing.result()  # an error from the last chunk's write

    async def _write(self, chunk: list[Row]) -> None:
        await self.driver.copy_records_to_table(STAGING, records=chunk, columns=STAGING_COLUMNS)
        self.staged += len(chunk)
        if self.direct:
            self.direct = await self._copy_into_table(chunk)
            if self.direct:
                self.inserted = self.staged

    async def _copy_into_table(self, chunk: list[Row]) -> bool:
        """COPY into `developers`; False, with nothing of the chunk kept, if an email is taken or repeated."""
        await self.driver.execute("SAVEPOINT import_chunk")
        try:
            records = [row[1:] for row in chunk]
            await self.driver.copy_records_to_table("developers", records=records, columns=TABLE_COLUMNS)
        except asyncpg.UniqueViolationError as exc:
            await self.driver.execute("ROLLBACK TO SAVEPOINT import_chunk")
            if exc.constraint_name != EMAIL_INDEX:
                raise
            return False
        await self.driver.execute("RELEASE SAVEPOINT import_chunk")
        return True
