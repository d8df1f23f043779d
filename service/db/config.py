"""The SQLAlchemy plugin's configuration, built from the settings: engine, pool, session, Alembic."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from service.core.database_urls import backend_of
from service.core.settings import Settings
from service.db import mariadb, pooler
from service.db.pool import ReadyFirstPool

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_versions"


def async_url(url: str) -> str:
    """Accept the plain `postgresql://` URLs operators and PostgreSQL tools use (the engine needs asyncpg's), and
    MariaDB's or MySQL's, on asyncmy (service.db.mariadb)."""
    if backend_of(url) == "mariadb":
        return mariadb.async_url(url)
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def plain_url(url: str) -> str:
    """`url` as asyncpg.connect takes it (no SQLAlchemy driver name)."""
    return make_url(async_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlalchemy_config(
    settings: Settings, application_name: str = "devdir", *, url: str | None = None
) -> SQLAlchemyAsyncConfig:
    """The plugin's configuration for DATABASE_URL, or for `url` (a standby's: the same pool, sizes and checks)."""
    on_mariadb = backend_of(url or settings.database_url) == "mariadb"
    server_settings = {"application_name": application_name}
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    if settings.db_idle_in_transaction_timeout_ms:
        server_settings["idle_in_transaction_session_timeout"] = str(settings.db_idle_in_transaction_timeout_ms)
    connect_args = (
        mariadb.connect_args(settings, application_name)
        if on_mariadb
        else pooler.connect_args(settings, server_settings, application_name)
    )
    config = SQLAlchemyAsyncConfig(
        connection_string=async_url(url or settings.database_url),
        engine_config=EngineConfig(
            poolclass=ReadyFirstPool,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,  # type: ignore[arg-type]  # SQLAlchemy takes a float
            pool_recycle=settings.db_pool_recycle,
            # SQLAlchemy's pre-ping costs three round trips on asyncpg (BEGIN, an empty query, ROLLBACK): the
            # check below costs none.
            pool_pre_ping=False,
            # Parameters are emails and password hashes: they stay out of logs and out of error messages.
            hide_parameters=True,
            # The level of a transaction no write declares (service.db.isolation, where each write names its own),
            # whatever the server's default_transaction_isolation; asyncpg sends it in its BEGIN, no round trip.
            isolation_level="READ COMMITTED",
            # server_settings travel in the startup packet: no SET statements after connecting; behind a
            # transaction-mode pooler they travel with each BEGIN instead (service.db.pooler).
            connect_args=connect_args,
            # Migrations (migrations/env.py) run on this URL: they need a session, which a pooler may not give.
            # On MariaDB they connect as the pool does (its session settings, which triggers keep).
            execution_options={pooler.DIRECT_URL_OPTION: async_url(settings.direct_url)}
            | ({pooler.CONNECT_ARGS_OPTION: connect_args} if on_mariadb else {}),
        ),
        session_config=AsyncSessionConfig(expire_on_commit=False, autoflush=False),
        # The plugin's default handler closes the session as the answer starts, which rolls back anything not
        # committed; commits are decided before that, by service.web.transaction.CommitBeforeAnswer (a 2xx is
        # sent only once COMMIT has succeeded; the plugin's "autocommit" handler sends it either way).
        before_send_handler=None,
        # Errors become RFC 9457 problems in service.web.problems, not advanced-alchemy's default JSON.
        set_default_exception_handler=False,
        # Timestamps come from SQL: server defaults on INSERT, the models' `onupdate=func.now()` in a Core UPDATE
        # (the bulk paths' SQL text sets it itself); the ORM listeners that would do it in Python would only add
        # per-flush work.
        enable_touch_updated_timestamp_listener=False,
        enable_file_object_listener=False,
        alembic_config=AlembicAsyncConfig(
            script_location=str(MIGRATIONS_DIR),
            script_config="",  # no alembic.ini: everything Alembic needs is set here and in migrations/env.py
            version_table_name=VERSION_TABLE,
            render_as_batch=False,
        ),
    )
    if settings.db_pool_pre_ping:
        checkout = _discard_if_broken if on_mariadb else _discard_if_closed
        event.listen(config.get_engine().sync_engine.pool, "checkout", checkout)
    return config


def replica_engine(settings: Settings, url: str) -> AsyncEngine:
    """The pool of reads sent to one standby of DATABASE_REPLICA_URLS: DB_POOL_SIZE and DB_MAX_OVERFLOW of its own,
    the same timeouts, and the same handling of a transaction-mode pooler in front of it (DB_POOLER)."""
    return sqlalchemy_config(settings, url=url).get_engine()


def _discard_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout hook: a connection the server has closed (terminated backend, restart, failover) is replaced
    before anyone uses it. asyncpg marks its connection closed as soon as the server's goodbye or the socket's
    end reaches the event loop, so this check makes no round trip; SQLAlchemy's pool discards a connection whose
    checkout raises DisconnectionError and checks out another. A server that dies between this check and the
    first statement fails that statement: hot reads retry once (service.developers.reads), anything else is 503.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection while it was in the pool")


def _discard_if_broken(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """The same check on asyncmy's connection (service.db.mariadb.is_closed), also without a round trip."""
    if mariadb.is_closed(dbapi_connection.driver_connection):
        raise DisconnectionError("the server closed this connection while it was in the pool")


def engine_disposer(config: SQLAlchemyAsyncConfig) -> Callable[[Any], Awaitable[None]]:
    """A shutdown hook that closes the pool's connections.

    advanced-alchemy's plugin disposes of the engine only when its app-state key is the default one, and it
    renames the key for every config after the first in a process (db_engine_1, ...): a process that builds more
    than one app (the test suite) would otherwise keep every earlier app's connections open until the garbage
    collector finds them. Disposing twice is harmless.
    """

    async def dispose(_: Any) -> None:
        await config.get_engine().dispose()

    return dispose
