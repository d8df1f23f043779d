"""A submitted import's body, kept in `import_uploads` in pieces of about 1 MiB until its job finishes.

Stored by COPY on the request's own connection, inside its transaction, as the body arrives: memory holds one
piece, whatever the body's size. Read back by the worker one piece per round trip, in order, so its memory stays
flat too.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import aclosing

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service.db.autocommit import EachCommits
from service.db.connection_lost import until_lost

PIECE = 1 << 20  # bytes per row of import_uploads
_COLUMNS = ("job_id", "seq", "data")
_READ = text("SELECT data FROM import_uploads WHERE job_id = :job_id AND seq = :seq")
_DELETE = text("DELETE FROM import_uploads WHERE job_id = :job_id")


async def store(driver: asyncpg.Connection, job_id: int, body: AsyncIterable[bytes]) -> int:
    """Write `body` for `job_id`, one COPY per piece; how many bytes it had. If the connection is lost while the
    body is awaited, that wait ends at once (service.db.connection_lost)."""
    seq = size = 0
    buffer = bytearray()
    async with aclosing(until_lost(driver, body)) as pieces:
        async for data in pieces:
            buffer += data
            size += len(data)
            while len(buffer) >= PIECE:
                await _copy(driver, job_id, seq, bytes(buffer[:PIECE]))
                del buffer[:PIECE]
                seq += 1
    if buffer:
        await _copy(driver, job_id, seq, bytes(buffer))
    return size


async def _copy(driver: asyncpg.Connection, job_id: int, seq: int, data: bytes) -> None:
    await driver.copy_records_to_table("import_uploads", records=[(job_id, seq, data)], columns=_COLUMNS)


async def read(connection: EachCommits, job_id: int) -> AsyncIterator[bytes]:
    """The body of `job_id`, piece by piece, in the order it arrived."""
    seq = 0
    while (data := (await connection.execute(_READ, {"job_id": job_id, "seq": seq})).scalar_one_or_none()) is not None:
        yield data
        seq += 1


async def delete(connection: AsyncConnection | AsyncSession, job_id: int) -> None:
    await connection.execute(_DELETE, {"job_id": job_id})
