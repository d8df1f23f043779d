"""What the request pool sends when DATABASE_URL is a transaction-mode pooler (DB_POOLER=transaction).

A transaction-mode pooler (PgBouncer) gives a client a server connection for one transaction at a time: whatever
a client leaves on a session (a SET, a LISTEN, a session advisory lock, a named prepared statement, a WITH HOLD
cursor, a temp table outliving its transaction) reaches the next client of that server connection, or is missing
from the next server connection this client gets. So, over the pooled URL:

- Settings travel with each transaction. The per-connection settings that a direct connection sends once in its
  startup packet (statement_timeout, idle_in_transaction_session_timeout) follow each BEGIN as `SET LOCAL`, in
  the same simple-query message: no round trip added (`TransactionSettings`). Only application_name, which
  PgBouncer itself carries from client to server connection, stays in the startup packet.
- Statements are unnamed (PgBouncer 1.18, without max_prepared_statements): SQLAlchemy's and asyncpg's statement
  caches are off and every Parse names the unnamed statement, which lives until the next Parse of the same
  connection, inside the transaction. The price is the Parse/Describe round trip a cached statement skips.
  A Parse and its Bind never sit on either side of a ReadyForQuery 'I', on which the pooler may hand the server
  connection to another client: inside a transaction none comes between them, and outside one (the hot reads)
  asyncpg describes an unnamed statement with a Flush and sends Parse, Bind, Execute and Sync together.
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

from typing import Any
from uuid import uuid4

import asyncpg

from service.core.settings import Settings

DIRECT_URL_OPTION = "devdir_direct_url"  # an engine execution option: DATABASE_DIRECT_URL, which migrations use


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


def connect_args(settings: Settings, server_settings: dict[str, str], application_name: str) -> dict[str, Any]:
    """The asyncpg connect arguments (and SQLAlchemy's prepared-statement options) of the request pool."""
    args: dict[str, Any] = {"timeout": settings.db_connect_timeout}
    if settings.db_pooler == "none":
        return {**args, "server_settings": server_settings}
    args["server_settings"] = {"application_name": application_name}
    args["connection_class"] = type(
        "PooledTransactionSettings",
        (TransactionSettings,),
        {"begin_suffix": "".join(f"SET LOCAL {name} = {int(value)};" for name, value in _local(server_settings))},
    )
    if settings.db_pooler_prepared_statements:
        # Unique names: a pooler that keeps statements maps each client's names to its own per server connection.
        args["prepared_statement_name_func"] = _unique_name
        return args
    args["statement_cache_size"] = 0  # asyncpg's own cache (fetch, copy): unnamed statements
    args["prepared_statement_cache_size"] = 0  # SQLAlchemy's cache of prepared statements
    args["prepared_statement_name_func"] = _unnamed  # and the statements it prepares are unnamed
    return args


def _local(server_settings: dict[str, str]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in server_settings.items() if name != "application_name"]


def _unnamed() -> str:
    return ""


def _unique_name() -> str:
    return f"__devdir_{uuid4().hex}__"
