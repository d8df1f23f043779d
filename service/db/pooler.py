"""What the request pool sends when DATABASE_URL is a transaction-mode pooler (DB_POOLER=transaction).

A transaction-mode pooler (PgBouncer) gives a client a server connection for one transaction at a time: whatever
a client leaves on a session (a SET, a LISTEN, a session advisory lock, a named prepared statement, a WITH HOLD
cursor, a temp table outliving its transaction) reaches the next client of that server connection, or is missing
from the next server connection this client gets. So, over the pooled URL:

- Settings travel with each transaction. The per-connection settings that a direct connection sends once in its
  startup packet (statement_timeout, idle_in_transaction_session_timeout) follow each BEGIN as `SET LOCAL`, in
  the same simple-query message: no round trip added (`TransactionSettings`). Only application_name and
  client_encoding, which PgBouncer itself carries from client to server connection, stay in the startup packet,
  client_encoding spelled `UTF8` as the server reports it: PgBouncer compares the two as strings, and asyncpg's
  own `'utf-8'` made it send `SET client_encoding` before every transaction (tests/db/test_pooler_parameters.py).
- Statements are unnamed (PgBouncer 1.18, without max_prepared_statements), and still described only once per
  client connection. asyncpg, with its statement cache off, marks an unnamed statement "unprepared" once it has
  described it (Parse, Describe, Flush): each later run of that statement object sends Parse, Bind, Execute and
  Sync together, one round trip, on whichever server connection the pooler gives. So the client keeps the
  described statements (their parameter and column types) and the server parses and plans each run anew:
  SQLAlchemy's cache of prepared statements stays on with unnamed statements, and the asyncpg calls of the hot
  paths go through `UnnamedStatements`' cache. A Parse and its Bind are never on either side of a ReadyForQuery
  'I', on which the pooler may hand the server connection to another client. The client-side descriptions
  assume the schema of the statements they describe does not change under a running process (a migration
  that changes a column's type ships with new processes, as it must anyway).
- asyncpg's look-up of a type it has no codec for turns JIT off with SET LOCAL, not with its own
  `set_config('jit', 'off', false)`, which would change the session (`TransactionSettings._introspect_types`).
- With DB_POOLER_PREPARED_STATEMENTS=true (PgBouncer >= 1.21 with max_prepared_statements > 0, which prepares a
  client's named protocol-level statements on whichever server connection runs them), the caches stay on, as on
  a direct connection: named Parse messages (unique names), each sent once per client connection; nothing else
  changes.

Everything that needs a session (the change feed's LISTEN, the job queue's listener, migrations) connects to
DATABASE_DIRECT_URL instead.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any
from uuid import uuid4

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement

from service.core.settings import Settings

DIRECT_URL_OPTION = "devdir_direct_url"  # an engine execution option: DATABASE_DIRECT_URL, which migrations use
# Another: the connect arguments a migration's own connection takes too (MariaDB's session settings).
CONNECT_ARGS_OPTION = "devdir_connect_args"


class TransactionSettings(asyncpg.Connection):  # type: ignore[misc]  # asyncpg's class is untyped
    """An asyncpg connection whose every BEGIN carries `SET LOCAL` of the session's settings, in one message.

    asyncpg starts a transaction (SQLAlchemy's, or `connection.transaction()`) with `execute("BEGIN ...;")`, a
    simple Query: the SET LOCAL statements ride in that same Query, so they cost no round trip.
    """

    begin_suffix = ""

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:  # noqa: ASYNC109 (asyncpg's signature)
        if not args and query[:5].upper() == "BEGIN":
            query = f"{query.rstrip().rstrip(';')};{self.begin_suffix}"
        return str(await super().execute(query, *args, timeout=timeout))

    async def _introspect_types(self, typeoids: Any, timeout: Any) -> Any:  # noqa: ASYNC109 (asyncpg's signature)
        """asyncpg's look-up of a type it has no codec for yet (an enum, a composite: once per connection), with
        JIT off for the rest of the transaction (`SET LOCAL`) instead of asyncpg's own `set_config('jit', ...,
        false)` before and after, which changes the session's setting. (tests/db/test_private_apis.py checks the
        private names.)"""
        await self.execute("SET LOCAL jit = off")
        capabilities: Any = self._server_caps  # type: ignore[has-type]  # asyncpg is untyped
        self._server_caps = capabilities._replace(jit=False)
        try:
            return await super()._introspect_types(typeoids, timeout)
        finally:
            self._server_caps = capabilities


class UnnamedStatements(TransactionSettings):
    """...that keeps the unnamed statements it has described, for `fetch`, `fetchrow` and `fetchval` (the hot reads,
    the feed's reads): each later run is one round trip (Parse, Bind, Execute, Sync), where asyncpg without a
    statement cache would describe the statement again first."""

    CACHE_SIZE = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._described: OrderedDict[str, PreparedStatement] = OrderedDict()

    async def _statement(self, query: str) -> PreparedStatement:
        statement = self._described.get(query)
        if statement is None or statement._state.closed:  # closed: asyncpg reset its state (a schema reload)
            statement = await self.prepare(query, name="")  # unnamed, marked unprepared once described
            self._described[query] = statement
            if len(self._described) > self.CACHE_SIZE:
                self._described.popitem(last=False)
        else:
            self._described.move_to_end(query)
        return statement

    async def fetch(self, query: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> list[Any]:  # noqa: ASYNC109 (asyncpg's signature)
        if kwargs:
            return list(await super().fetch(query, *args, timeout=timeout, **kwargs))
        return list(await (await self._statement(query)).fetch(*args, timeout=timeout))

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:  # noqa: ASYNC109
        if kwargs:
            return await super().fetchrow(query, *args, timeout=timeout, **kwargs)
        return await (await self._statement(query)).fetchrow(*args, timeout=timeout)

    async def fetchval(self, query: str, *args: Any, column: int = 0, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        return await (await self._statement(query)).fetchval(*args, column=column, timeout=timeout)


def connect_args(settings: Settings, server_settings: dict[str, str], application_name: str) -> dict[str, Any]:
    """The asyncpg connect arguments (and SQLAlchemy's prepared-statement options) of the request pool."""
    args: dict[str, Any] = {"timeout": settings.db_connect_timeout}
    if settings.db_pooler == "none":
        return {**args, "server_settings": server_settings}
    # After asyncpg's own client_encoding in the startup packet, so this one is the value PgBouncer keeps.
    args["server_settings"] = {"application_name": application_name, "client_encoding": "UTF8"}
    base = TransactionSettings if settings.db_pooler_prepared_statements else UnnamedStatements
    args["connection_class"] = type(
        f"Pooled{base.__name__}",
        (base,),
        {"begin_suffix": "".join(f"SET LOCAL {name} = {int(value)};" for name, value in _local(server_settings))},
    )
    if settings.db_pooler_prepared_statements:
        # Unique names: a pooler that keeps statements maps each client's names to its own per server connection.
        args["prepared_statement_name_func"] = _unique_name
        return args
    args["statement_cache_size"] = 0  # asyncpg's own cache would name its statements: off, so they are unnamed
    args["prepared_statement_name_func"] = _unnamed  # SQLAlchemy's statements too (its cache stays on)
    return args


def _local(server_settings: dict[str, str]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in server_settings.items() if name != "application_name"]


def _unnamed() -> str:
    return ""


def _unique_name() -> str:
    return f"__devdir_{uuid4().hex}__"
