"""The hot reads, GET one developer and GET a page of them: one round trip each, answered as JSON bytes.

These two routes are most of the service's traffic, so they take the leanest path the engine offers: a pooled
connection's asyncpg connection, straight from the SQLAlchemy pool (the same pool, size and timeout as every
other request), with no session, no transaction and no ORM or Core layer in between. Reads need no transaction:
one SELECT is its own consistent snapshot, so BEGIN and COMMIT would only add two round trips.

One developer's JSON is written by PostgreSQL (`row_to_json`, timestamps as msgspec writes them); a page's rows
come back as records and msgspec writes them, as building a page's JSON costs the database more than Python
saves (docs/decisions/0006-hot-read-json.md). Behind a transaction-mode pooler without prepared statements, where
the server plans each statement on each run, one developer comes as columns too, which cost less to plan. Either
way the bytes are the same (tests/developers/test_reads.py).

Round trips: exactly one per request (asyncpg's statement cache prepares each statement once per connection).
Behind a transaction-mode pooler without prepared statements (DB_POOLER=transaction), two: asyncpg describes the
unnamed statement (Parse, Describe, Flush), then sends Parse, Bind, Execute and Sync together, so the pooler keeps
one server connection for both. Outside a transaction, such a read runs under the server's own statement_timeout
(a role's or database's setting), not DB_STATEMENT_TIMEOUT_MS, which rides on BEGIN there (service.db.pooler).
A pooled connection is checked at checkout without a round trip (service.db.config); if the server ends it
between that check and the query, the read is retried once on a fresh connection, as a read is safe to repeat.

With DATABASE_REPLICA_URLS, these reads run on a fit hot standby (service.db.routing). One that must see some
writes (a Consistency-Token, or the account's last write in this process) then carries the check of that in the
same statement, as its first column (`guarded`); still one round trip, and on the primary no check at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

import asyncpg
import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from service.core.validation import nfc
from service.db.consistency import NOTHING, Need, fetch_needing
from service.db.pooler import UnnamedStatements
from service.db.routing import ReadRouter
from service.developers import keyset
from service.developers.errors import DeveloperNotFound
from service.developers.schemas import Developer, DeveloperPage

_PAGE_ENCODER = msgspec.json.Encoder()

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

# The version (the ETag's, service.developers.etags) comes in the same row: no second round trip.
_GET = f"SELECT convert_to({_DOCUMENT}, 'UTF8'), d.version FROM developers d WHERE d.id = $1"  # noqa: S608

# One row more than the page tells whether another page exists, without a COUNT. The row comparison lets
# PostgreSQL start its index range scan right after the cursor. The columns are the Struct's own fields, in its
# order, so `Developer(*record)` maps each column to the field of its name by construction (msgspec.convert of
# an asyncpg Record by name costs 18 times as much: 180 µs a page of 100, measured).
_COLUMNS = ", ".join(Developer.__struct_fields__)
_PAGE = f"SELECT {_COLUMNS} FROM developers WHERE {{where}} ORDER BY name, id LIMIT $1"  # noqa: S608
_WHERE = {
    (False, False): "true",
    (False, True): "(name, id) > ($2, $3)",
    (True, False): "specialty = $2",
    (True, True): "specialty = $2 AND (name, id) > ($3, $4)",
}
_LIST = {key: _PAGE.format(where=where) for key, where in _WHERE.items()}
# Behind a transaction-mode pooler without prepared statements the server parses and plans every statement on
# every run (service.db.pooler): there the columns, written as JSON by msgspec, cost the server far less than
# _GET's document (GET by id through PgBouncer 1.18: 0.58 of the direct figure with _GET, docs/benchmarks.md).
_GET_COLUMNS = f"SELECT {_COLUMNS}, version FROM developers WHERE id = $1"  # noqa: S608
_DEVELOPER_ENCODER = msgspec.json.Encoder()

# The server ended the connection after the checkout looked at it: the next connection will do.
_GONE = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)


class ReadQueries(Protocol):
    """The two statements of the hot reads on one kind of server, each run on a pooled connection of `engine`:
    this module's for PostgreSQL, service.developers.reads_mariadb's for MariaDB (chosen once, in deps)."""

    async def one(self, engine: AsyncEngine, need: Need, developer_id: int) -> tuple[bytes, int] | None:
        """The developer's JSON and version, None if there is none."""
        ...

    async def page(
        self, engine: AsyncEngine, need: Need, specialty: str | None, after: tuple[str, int] | None, limit: int
    ) -> Sequence[Developer]:
        """Up to `limit` developers in (name, id) order after `after`, of `specialty` if given."""
        ...


class PostgresReads:
    """PostgreSQL's hot reads: asyncpg on the pooled connection, one round trip (see the module's docstring)."""

    async def one(self, engine: AsyncEngine, need: Need, developer_id: int) -> tuple[bytes, int] | None:
        rows = await _fetch(engine, need, _GET, (developer_id,), _GET_COLUMNS, None)
        if not rows:
            return None
        row = rows[0]
        if len(row) == 2:
            return cast(bytes, row[0]), cast(int, row[1])
        return _DEVELOPER_ENCODER.encode(Developer(*row[:-1])), cast(int, row[-1])

    async def page(
        self, engine: AsyncEngine, need: Need, specialty: str | None, after: tuple[str, int] | None, limit: int
    ) -> Sequence[Developer]:
        args: list[object] = [limit]
        if specialty is not None:
            args.append(specialty)
        if after is not None:
            args.extend(after)
        query = _LIST[specialty is not None, after is not None]
        rows = await _fetch(engine, need, query, tuple(args), None, "name, id")
        return [Developer(*row) for row in rows]


class DeveloperReads:
    """The hot reads of one request: on a fit standby or the primary (service.db.routing), seeing at least what
    `need` names (the request's Consistency-Token, or its account's last write in this process)."""

    def __init__(self, router: ReadRouter, need: Need = NOTHING, queries: ReadQueries | None = None) -> None:
        self.router = router
        self.need = need
        self.queries = queries or POSTGRESQL

    async def page(self, *, specialty: str | None, limit: int, cursor: str | None) -> bytes:
        """A DeveloperPage as JSON: the page after `cursor` (a `next_cursor` this method gave), or the first."""
        after = None if cursor is None else keyset.decode(cursor)
        # Specialties are stored in NFC: so is the one asked for. One row more than the page tells whether another
        # page exists, without a COUNT.
        wanted = None if specialty is None else nfc(specialty)

        async def run(engine: AsyncEngine, need: Need) -> Sequence[Developer]:
            return await self.queries.page(engine, need, wanted, after, limit + 1)

        rows = await self.router.read(self.need, run)
        items = list(rows[:limit])
        next_cursor = keyset.encode(items[-1].name, items[-1].id) if len(rows) > limit else None
        return _PAGE_ENCODER.encode(DeveloperPage(items=items, next_cursor=next_cursor))

    async def one(self, developer_id: int) -> tuple[bytes, int]:
        """A Developer as JSON, and its version."""

        async def run(engine: AsyncEngine, need: Need) -> tuple[bytes, int] | None:
            return await self.queries.one(engine, need, developer_id)

        found = await self.router.read(self.need, run)
        if found is None:
            raise DeveloperNotFound(developer_id)
        return found


POSTGRESQL = PostgresReads()


async def _fetch(
    engine: AsyncEngine,
    need: Need,
    query: str,
    args: tuple[object, ...],
    parsed_every_run: str | None,
    order: str | None,
) -> Sequence[Sequence[Any]]:
    """`query`'s rows on one of `engine`'s connections; with a `need`, only if the statement's snapshot has it
    (else Behind)."""
    for attempt in (1, 2):
        pooled = await engine.raw_connection()
        driver = cast(asyncpg.Connection, pooled.driver_connection)
        statement = (
            parsed_every_run if parsed_every_run is not None and isinstance(driver, UnnamedStatements) else query
        )
        try:
            return await fetch_needing(driver, need, statement, args, order)
        except _GONE:
            if attempt == 2 or not driver.is_closed():
                raise
            pooled.invalidate()  # never back into the pool; retried once below
        finally:
            # Back to the pool, without the ~9 µs of a greenlet: returning a connection awaits nothing here.
            # (Closing one would: the pool closes a surplus connection on return, and with overflow there
            # can be one; an invalidated one was terminated above, which awaits nothing.)
            if engine.sync_engine.pool.overflow() > 0:  # type: ignore[attr-defined]
                await greenlet_spawn(pooled.close)
            else:
                pooled.close()
    raise AssertionError("unreachable")
