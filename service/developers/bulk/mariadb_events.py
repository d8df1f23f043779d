"""The change feed's events of bulk writes on MariaDB: one summary per statement, as PostgreSQL's triggers write.

MariaDB has row triggers only. Under the session variable `@devdir_bulk` they write no event per row and tally
instead, per operation, in session variables (migration 0007): how many rows, the first and last id, the ids up
to 1,000, the distinct specialties up to 100. After each bulk statement `write_events` turns the tallies into the
events PostgreSQL's statement triggers (0004) would have written, in the same transaction, and clears them: a
`bulk` summary, or the row's own created/updated/deleted event when the statement wrote one row.

`bulk_writes` sets `@devdir_bulk` and clears it, and the tallies, afterwards, whatever happened: connections are
pooled, and the next request on this one must have its triggers back. Round trips: one SET before, one after;
per statement two (read and clear the tallies) and one INSERT per event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

OPERATIONS = ("created", "updated", "deleted")
MAX_IDS, MAX_SPECIALTIES = 1000, 100  # as in PostgreSQL's summaries (0004)
_PARTS = ("n", "first", "last", "ids", "sp", "spn")
_TALLIES = [f"@devdir_{operation}_{part}" for operation in OPERATIONS for part in _PARTS]
_READ = "SELECT " + ", ".join(_TALLIES)
_CLEAR = "SET " + ", ".join(f"{name} = NULL" for name in _TALLIES)
_END = f"{_CLEAR}, @devdir_bulk = NULL"

_SUMMARY = "INSERT INTO developer_events (op, specialties, bulk) VALUES ('bulk', %s, %s)"
# The row's own event, as the row triggers (0007) write it: the developer as PostgreSQL's to_jsonb(row), in UTC.
_STAMP = "DATE_FORMAT({0}, '%%Y-%%m-%%dT%%H:%%i:%%s.%%fZ')"
_ONE_WRITTEN = f"""
    INSERT INTO developer_events (op, developer_id, specialty, specialties, developer)
    SELECT %s, id, specialty, %s, JSON_OBJECT('id', id, 'name', name, 'email', email, 'specialty', specialty,
        'created_at', {_STAMP.format("created_at")}, 'updated_at', {_STAMP.format("updated_at")}, 'version', version)
    FROM developers WHERE id = %s"""  # noqa: S608 (constants only)
_ONE_DELETED = """
    INSERT INTO developer_events (op, developer_id, specialty, specialties) VALUES ('deleted', %s, %s, %s)"""


@asynccontextmanager
async def bulk_writes(connection: AsyncConnection) -> AsyncIterator[None]:
    """Row triggers tally instead of writing events while the block runs (see the module's docstring)."""
    await connection.exec_driver_sql(f"{_CLEAR}, @devdir_bulk = 1")
    try:
        yield
    finally:
        await connection.exec_driver_sql(_END)


async def write_events(connection: AsyncConnection) -> dict[str, int]:
    """Write the events of the statements run since the last call, and clear their tallies; the rows each
    operation wrote ({"created": n, ...})."""
    values = (await connection.exec_driver_sql(_READ)).one()
    await connection.exec_driver_sql(_CLEAR)
    written: dict[str, int] = {}
    for index, operation in enumerate(OPERATIONS):
        n, first, last, ids, sp, spn = values[index * len(_PARTS) : (index + 1) * len(_PARTS)]
        written[operation] = int(n or 0)
        if n:
            specialties = _specialties(sp, spn)
            await _write(connection, operation, int(n), int(first), int(last), _ids(ids), specialties)
    return written


async def _write(
    connection: AsyncConnection,
    operation: str,
    n: int,
    first: int,
    last: int,
    ids: list[int] | None,
    specialties: list[str] | None,
) -> None:
    listed = None if specialties is None else msgspec.json.encode(specialties).decode()
    if n == 1 and operation == "deleted":
        assert specialties is not None
        await connection.exec_driver_sql(_ONE_DELETED, (first, specialties[0], listed))
    elif n == 1:
        await connection.exec_driver_sql(_ONE_WRITTEN, (operation, listed, first))
    else:
        bulk: dict[str, Any] = {
            "operation": operation,
            "count": n,
            "first_id": first,
            "last_id": last,
            "ids": ids,
            "specialties": specialties,
        }
        await connection.exec_driver_sql(_SUMMARY, (listed, msgspec.json.encode(bulk).decode()))


def _ids(tally: Any) -> list[int] | None:
    if tally is None:
        return None  # more than MAX_IDS
    text = tally.decode() if isinstance(tally, bytes) else str(tally)
    return sorted(int(id_) for id_ in text.split(","))


def _specialties(tally: Any, count: Any) -> list[str] | None:
    """The distinct specialties in code point order (PostgreSQL's C collation), None past MAX_SPECIALTIES."""
    if tally is None or int(count or 0) > MAX_SPECIALTIES:
        return None
    text = tally.decode() if isinstance(tally, bytes) else str(tally)
    return sorted(specialty for specialty in text.split("\0") if specialty)
