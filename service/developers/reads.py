"""The hot reads, GET one developer and GET a page of them: one round trip each, and PostgreSQL writes the JSON.

These two routes are most of the service's traffic, so they take the leanest path the engine offers: a pooled
connection's asyncpg connection, straight from the SQLAlchemy pool (the same pool, size and timeout as every
other request), with no session, no transaction and no ORM or Core layer in between. Reads need no transaction:
one SELECT is its own consistent snapshot, so BEGIN and COMMIT would only add two round trips.

PostgreSQL builds each developer's JSON (`row_to_json`, timestamps written as msgspec writes them: RFC 3339 in UTC
with a `Z`), and a page's items arrive as one `bytea` that goes into the answer as it is, never
decoded into rows or Structs in Python. That moves the per-row work off the one Python process and onto the
database's own cores; the bytes are what msgspec would have written for the same rows.

Round trips: exactly one per request (asyncpg's statement cache prepares each statement once per connection).
A pooled connection is checked at checkout without a round trip (service.db.config); if the server ends it
between that check and the query, the read is retried once on a fresh connection, as a read is safe to repeat.
"""

from __future__ import annotations

from typing import cast

import asyncpg
import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from service.developers.errors import DeveloperNotFound
from service.developers.keyset import encode as encode_cursor

# RFC 3339 in UTC, exactly as msgspec writes a datetime: microseconds unless there are none, and a `Z`.
_TIMESTAMP = """CASE WHEN extract(microseconds FROM {0})::bigint % 1000000 = 0
    THEN to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    ELSE to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END"""
# The columns in the order of service.developers.schemas.Developer, as one JSON object per row. (Statements here
# are put together from these constants only; every value is a bind parameter.)
_DOCUMENT = f"""
    row_to_json((SELECT doc FROM (SELECT d.id, d.name, d.email, d.specialty,
        {_TIMESTAMP.format("d.created_at")} AS created_at,
        {_TIMESTAMP.format("d.updated_at")} AS updated_at) AS doc))::text"""  # noqa: S608

_GET = f"SELECT convert_to({_DOCUMENT}, 'UTF8') FROM developers d WHERE d.id = $1"  # noqa: S608

# One row more than the page tells whether another page exists, without a COUNT; the last row shown gives the
# cursor. The row comparison lets PostgreSQL start its index range scan right after the cursor.
_PAGE = """
    WITH page AS (
        SELECT d.id, d.name, {document} AS doc FROM developers d
        WHERE {where} ORDER BY d.name, d.id LIMIT $1 + 1),
    numbered AS (SELECT id, name, doc, row_number() OVER (ORDER BY name, id) AS n FROM page)
    SELECT convert_to('[' || coalesce(string_agg(doc, ',' ORDER BY n) FILTER (WHERE n <= $1), '') || ']', 'UTF8'),
           count(*) > $1, max(name) FILTER (WHERE n = $1), max(id) FILTER (WHERE n = $1)
    FROM numbered"""
_WHERE = {
    (False, False): "true",
    (False, True): "(d.name, d.id) > ($2, $3)",
    (True, False): "d.specialty = $2",
    (True, True): "d.specialty = $2 AND (d.name, d.id) > ($3, $4)",
}
_LIST = {key: _PAGE.format(document=_DOCUMENT, where=where) for key, where in _WHERE.items()}

# The server ended the connection after the checkout looked at it: the next connection will do.
_GONE = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)


class DeveloperReads:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def page(self, *, specialty: str | None, limit: int, after: tuple[str, int] | None) -> bytes:
        """A DeveloperPage as JSON."""
        args: list[object] = [limit]
        if specialty is not None:
            args.append(specialty)
        if after is not None:
            args.extend(after)
        row = await self._fetchrow(_LIST[specialty is not None, after is not None], *args)
        assert row is not None  # an aggregate always returns its row
        items, more, last_name, last_id = row
        cursor = encode_cursor(last_name, last_id) if more else None
        return b'{"items":' + cast(bytes, items) + b',"next_cursor":' + msgspec.json.encode(cursor) + b"}"

    async def one(self, developer_id: int) -> bytes:
        """A Developer as JSON."""
        row = await self._fetchrow(_GET, developer_id)
        if row is None:
            raise DeveloperNotFound(developer_id)
        return cast(bytes, row[0])

    async def _fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        for attempt in (1, 2):
            pooled = await self.engine.raw_connection()
            driver = cast(asyncpg.Connection, pooled.driver_connection)
            try:
                return await driver.fetchrow(query, *args)
            except _GONE:
                if attempt == 2 or not driver.is_closed():
                    raise
                pooled.invalidate()  # never back into the pool; retried once below
            finally:
                # Back to the pool, without the ~9 µs of a greenlet: returning a connection awaits nothing here.
                # (Closing one would: the pool closes a surplus connection on return, and with overflow there
                # can be one; an invalidated one was terminated above, which awaits nothing.)
                if self.engine.sync_engine.pool.overflow() > 0:  # type: ignore[attr-defined]
                    await greenlet_spawn(pooled.close)
                else:
                    pooled.close()
        raise AssertionError("unreachable")
