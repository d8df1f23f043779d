"""The change feed's events of bulk writes on MariaDB: one summary per statement, as PostgreSQL's triggers write.

MariaDB has row triggers only. Under the session variable `@devdir_bulk` they write no event per row (migration
0007), and the bulk service writes, after each bulk statement and in its transaction, what PostgreSQL's statement
triggers (0004) would have: a `bulk` summary (operation, count, first and last id, the ids up to 1,000, the
distinct specialties up to 100), or the row's own created/updated/deleted event when the statement wrote one row.
What an INSERT or a DELETE wrote, the service knows (its rows, their ids: see mariadb.py); an UPDATE's old
specialties only its trigger sees, so the UPDATE trigger tallies them in session variables, read and cleared here.

`bulk_writes` sets `@devdir_bulk` and clears it, and the tallies, afterwards, whatever happened: connections are
pooled, and the next request on this one must have its triggers back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

MAX_IDS, MAX_SPECIALTIES = 1000, 100  # as in PostgreSQL's summaries (0004)
_TALLIES = [f"@devdir_updated_{part}" for part in ("n", "first", "last", "ids", "sp", "spn")]
_READ = "SELECT " + ", ".join(_TALLIES)
_CLEAR = "SET " + ", ".join(f"{name} = NULL" for name in _TALLIES)

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
# A summary of rows a query selects (id, specialty), computed by the server.
_AGGREGATE = f"""
    SELECT COUNT(*), MIN(id), MAX(id), JSON_ARRAYAGG(id ORDER BY id LIMIT {MAX_IDS + 1}),
           JSON_ARRAYAGG(DISTINCT specialty ORDER BY specialty LIMIT {MAX_SPECIALTIES + 1})
    FROM ({{rows}}) AS written"""  # noqa: S608 (constants only)


@dataclass(frozen=True, slots=True)
class Summary:
    """What one statement wrote, as the change feed tells it."""

    operation: str  # created, updated, deleted
    count: int
    first_id: int
    last_id: int
    ids: list[int] | None  # None past MAX_IDS
    specialties: list[str] | None  # distinct, in code point order (PostgreSQL's C collation); None past 100


def summary(operation: str, ids: list[int], specialties: Iterable[str]) -> Summary:
    """The summary of rows known to the caller: their ids in order, their specialties."""
    distinct = set(specialties)
    listed = sorted(distinct) if len(distinct) <= MAX_SPECIALTIES else None
    return Summary(operation, len(ids), ids[0], ids[-1], ids if len(ids) <= MAX_IDS else None, listed)


@asynccontextmanager
async def bulk_writes(connection: AsyncConnection) -> AsyncIterator[None]:
    """Row triggers write no events while the block runs (see the module's docstring)."""
    await connection.exec_driver_sql(f"{_CLEAR}, @devdir_bulk = 1")
    try:
        yield
    finally:
        await connection.exec_driver_sql(f"{_CLEAR}, @devdir_bulk = NULL")


async def aggregated(connection: AsyncConnection, operation: str, rows: str, params: tuple[Any, ...]) -> Summary:
    """The summary of the rows (id, specialty) that the query `rows` selects; count 0 when none."""
    row: Any = (await connection.exec_driver_sql(_AGGREGATE.format(rows=rows), params)).one()
    n, first, last, ids, specialties = row
    if not n:
        return Summary(operation, 0, 0, 0, [], [])
    listed: list[str] = msgspec.json.decode(specialties)
    return Summary(
        operation,
        int(n),
        int(first),
        int(last),
        msgspec.json.decode(ids, type=list[int]) if n <= MAX_IDS else None,
        listed if len(listed) <= MAX_SPECIALTIES else None,
    )


async def tallied_updates(connection: AsyncConnection) -> Summary:
    """The summary of the rows UPDATEd since the tallies were last cleared, which it clears; count 0 when none."""
    row: Any = (await connection.exec_driver_sql(_READ)).one()
    n, first, last, ids, sp, spn = row
    await connection.exec_driver_sql(_CLEAR)
    if not n:
        return Summary("updated", 0, 0, 0, [], [])
    specialties = None if int(spn) > MAX_SPECIALTIES else sorted(s for s in _text(sp).split("\0") if s)
    listed = None if ids is None else sorted(int(id_) for id_ in _text(ids).split(","))
    return Summary("updated", int(n), int(first), int(last), listed, specialties)


async def write_event(connection: AsyncConnection, written: Summary) -> None:
    """The event of one statement's rows: nothing for none, the row's own for one, else a summary."""
    if not written.count:
        return
    listed = None if written.specialties is None else msgspec.json.encode(written.specialties).decode()
    if written.count == 1 and written.operation == "deleted":
        assert written.specialties is not None
        await connection.exec_driver_sql(_ONE_DELETED, (written.first_id, written.specialties[0], listed))
    elif written.count == 1:
        await connection.exec_driver_sql(_ONE_WRITTEN, (written.operation, listed, written.first_id))
    else:
        bulk = {
            "operation": written.operation,
            "count": written.count,
            "first_id": written.first_id,
            "last_id": written.last_id,
            "ids": written.ids,
            "specialties": written.specialties,
        }
        await connection.exec_driver_sql(_SUMMARY, (listed, msgspec.json.encode(bulk).decode()))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
