"""The server the tests run against: TEST_DATABASE_URL's (PostgreSQL's or MariaDB's), or an embedded PostgreSQL; a
fresh database either way.

`run_sql`, `fetch`, `fetchval` and `empty` work on both servers (SQL without parameters); `query`, `query_value`
and `insert` take `:name` parameters on both (SQLAlchemy's text()). `connect` and parameters written `$1` are
asyncpg's.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from advanced_alchemy.alembic.commands import AlembicCommands
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from service.core.database_urls import backend_of
from service.core.settings import Settings
from service.db import embedded
from service.db.config import async_url, sqlalchemy_config
from tests import mariadb


async def connect(url: str, **options: Any) -> asyncpg.Connection:
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.query.get("host") or parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
        **options,
    )


async def run_sql(url: str, *statements: str) -> None:
    if backend_of(url) == "mariadb":
        await mariadb.run_sql(url, *statements)
        return
    conn = await connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def fetchval(url: str, sql: str, *args: Any) -> Any:
    if backend_of(url) == "mariadb":
        return await query_value(url, _unparameterised(sql, args))
    conn = await connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def fetch(url: str, sql: str, *args: Any) -> Sequence[asyncpg.Record | Record]:
    if backend_of(url) == "mariadb":
        return await query(url, _unparameterised(sql, args))
    conn = await connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def _unparameterised(sql: str, args: tuple[Any, ...]) -> str:
    if args:
        raise TypeError("`$1` parameters are asyncpg's: query() takes `:name` ones on both servers")
    return sql


class Record:
    """A row read as asyncpg's Record is: by column name or position, `dict(row)`, `tuple(row)`."""

    def __init__(self, keys: Sequence[str], values: Sequence[Any]) -> None:
        self._keys = tuple(keys)
        self._values = tuple(values)

    def keys(self) -> tuple[str, ...]:
        return self._keys

    def __getitem__(self, key: int | str) -> Any:
        return self._values[key if isinstance(key, int) else self._keys.index(key)]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Record({dict(zip(self._keys, self._values, strict=True))!r})"


async def query(url: str, sql: str, **params: Any) -> list[Record]:
    """The rows of `sql` (written with `:name` parameters) on either server, in a transaction of its own that
    commits; times aware, in UTC, on both (MariaDB's DATETIME(6) columns hold UTC)."""
    async with _engine(url) as engine, engine.begin() as conn:
        result = await conn.execute(text(sql), params)
        if not result.returns_rows:
            return []
        keys = list(result.keys())
        return [Record(keys, tuple(map(_aware, row))) for row in result]


def _aware(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


async def insert(url: str, table: str, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys, the columns) into `table` in one transaction, on either server."""
    columns = list(rows[0])
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(f':{column}' for column in columns)})"
    async with _engine(url) as engine, engine.begin() as conn:
        await conn.execute(text(sql), list(rows))


@asynccontextmanager
async def holding(url: str, *statements: str) -> AsyncIterator[AsyncConnection]:
    """A connection of its own inside a transaction that has run `statements` (and holds their locks) for the
    block, rolled back at its end; on either server."""
    async with _engine(url) as engine, engine.connect() as conn:
        transaction = await conn.begin()
        try:
            for statement in statements:
                await conn.execute(text(statement))
            yield conn
        finally:
            if transaction.is_active:  # not rolled back already by the block
                await transaction.rollback()


@asynccontextmanager
async def _engine(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine of one connection at a time, closed at the end of the block."""
    options: dict[str, Any] = {}
    if backend_of(url) == "mariadb":
        options["connect_args"] = {"charset": "utf8mb4", "init_command": "SET time_zone = '+00:00'"}
    engine = create_async_engine(async_url(url), poolclass=NullPool, **options)
    try:
        yield engine
    finally:
        await engine.dispose()


def queue_tables(url: str) -> tuple[str, ...]:
    """The job queue's tables on the server `url` names: pgqueuer's on PostgreSQL, import_queue on MariaDB."""
    return ("import_queue",) if backend_of(url) == "mariadb" else ("pgqueuer", "pgqueuer_log")


async def query_value(url: str, sql: str, **params: Any) -> Any:
    """The first column of the first row of `sql` (`:name` parameters) on either server, or None."""
    rows = await query(url, sql, **params)
    return rows[0][0] if rows else None


@contextmanager
def server_url() -> Iterator[str]:
    """URL of a maintenance database on the server the tests use."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url if mariadb.run_on_mariadb() else async_url(url)
        return
    with tempfile.TemporaryDirectory(prefix="devdir-test-") as tmp:
        server = embedded.start(Path(tmp) / "pgdata", cleanup="delete")
        yield embedded.database_url(server, "postgres")
        server.cleanup()


@contextmanager
def fresh_database(server: str, *, migrate: bool = True) -> Iterator[str]:
    """A new, empty database on `server` (migrated to head unless told not to), dropped afterwards."""
    name = f"devdir_test_{secrets.token_hex(4)}"
    create, drop = (
        (mariadb.CREATE_DATABASE, mariadb.DROP_DATABASE)
        if backend_of(server) == "mariadb"
        else ('CREATE DATABASE "{}"', 'DROP DATABASE IF EXISTS "{}" WITH (FORCE)')
    )
    asyncio.run(run_sql(server, create.format(name)))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            AlembicCommands(sqlalchemy_config=sqlalchemy_config(Settings(database_url=url))).upgrade("head")
        yield url
    finally:
        asyncio.run(run_sql(server, drop.format(name)))


@contextmanager
def password_server(password: str) -> Iterator[str]:
    """A PostgreSQL of its own that checks passwords (the test servers trust every login): embedded, in a temporary
    directory, with scram-sha-256 on its Unix socket; the URL of its `postgres` database with the right password."""
    with tempfile.TemporaryDirectory(prefix="devdir-test-") as tmp:
        server = embedded.start(Path(tmp) / "pgdata", cleanup="delete")
        try:
            url = embedded.database_url(server, "postgres")
            (server.pgdata / "pg_hba.conf").write_text("local all all scram-sha-256\n")  # in force once reloaded
            asyncio.run(_require_password(url, password))
            yield make_url(url).set(password=password).render_as_string(hide_password=False)
        finally:
            server.cleanup()


async def _require_password(url: str, password: str) -> None:
    conn = await connect(url)
    try:
        await conn.execute(f"ALTER ROLE postgres PASSWORD '{password}'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    for _ in range(100):  # the server reloads its configuration a moment later
        try:
            await (await connect(url)).close()
        except asyncpg.InvalidPasswordError:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the server still lets a login in without its password")


async def empty(url: str, *tables: str) -> None:
    """Empty `tables` and restart their identities, on either server."""
    if backend_of(url) == "mariadb":
        await mariadb.empty(url, *tables)
    else:
        await run_sql(url, f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
