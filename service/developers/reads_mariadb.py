"""The hot reads on MariaDB: GET one developer and a page of them, on a pooled connection's asyncmy connection.

The same lean path as PostgreSQL's (service.developers.reads): no session, no ORM, the rows written as JSON by
msgspec. Two things differ:
- MariaDB uses an index for `name > ? OR (name = ? AND id > ?)`, not for the row comparison `(name, id) > (?, ?)`
  (EXPLAIN shows a full index scan for the latter): the keyset is spelled out.
- A SELECT on a connection outside autocommit opens a transaction, which the pool rolls back as the connection
  returns: two round trips per read (the SELECT, then ROLLBACK). DATETIME(6) comes back without a zone: it is
  UTC (service.db.mariadb), and is marked so before msgspec writes it.
No standbys on MariaDB (`need` is always empty), so no read carries a check.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from service.db.consistency import Need
from service.developers.schemas import Developer

_COLUMNS = ", ".join(Developer.__struct_fields__)
_GET = f"SELECT {_COLUMNS}, version FROM developers WHERE id = %s"  # noqa: S608 (constants only)
_AFTER = "(name > %s OR (name = %s AND id > %s))"
_WHERE = {
    (False, False): "TRUE",
    (False, True): _AFTER,
    (True, False): "specialty = %s",
    (True, True): f"specialty = %s AND {_AFTER}",
}
_LIST = {
    key: f"SELECT {_COLUMNS} FROM developers WHERE {where} ORDER BY name, id LIMIT %s"  # noqa: S608
    for key, where in _WHERE.items()
}
_ENCODER = msgspec.json.Encoder()


class MariaDBReads:
    """service.developers.reads.ReadQueries on MariaDB."""

    async def one(self, engine: AsyncEngine, need: Need, developer_id: int) -> tuple[bytes, int] | None:
        rows = await _fetch(engine, _GET, (developer_id,))
        if not rows:
            return None
        *fields, version = rows[0]
        return _ENCODER.encode(_developer(fields)), version

    async def page(
        self, engine: AsyncEngine, need: Need, specialty: str | None, after: tuple[str, int] | None, limit: int
    ) -> Sequence[Developer]:
        args: list[object] = [] if specialty is None else [specialty]
        if after is not None:
            name, last_id = after
            args += [name, name, last_id]
        rows = await _fetch(engine, _LIST[specialty is not None, after is not None], (*args, limit))
        return [_developer(row) for row in rows]


def _developer(row: Sequence[Any]) -> Developer:
    id_, name, email, specialty, created_at, updated_at = row
    return Developer(id_, name, email, specialty, _utc(created_at), _utc(updated_at))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


async def _fetch(engine: AsyncEngine, query: str, args: tuple[object, ...]) -> Sequence[Sequence[Any]]:
    """`query`'s rows on a pooled connection. A connection the server ended while pooled is replaced at checkout
    without a round trip (service.db.config); one that ends during the read fails it (503), as a write would."""
    pooled = await engine.raw_connection()
    try:
        async with pooled.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            await cursor.execute(query, args)
            return list(await cursor.fetchall())
    finally:
        # The pool rolls the read's transaction back as the connection returns: a round trip, so in a greenlet.
        await greenlet_spawn(pooled.close)
