"""The PostgreSQL the tests run against: TEST_DATABASE_URL's server, or an embedded one; a fresh database either way."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
from advanced_alchemy.alembic.commands import AlembicCommands
from sqlalchemy.engine import make_url

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


async def fetchval(url: str, query: str) -> Any:
    conn = await connect(url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await connect(url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


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
    if backend_of(server) == "mariadb":
        with mariadb.fresh_database(server, migrate=migrate) as url:
            yield url
        return
    name = f"devdir_test_{secrets.token_hex(4)}"
    asyncio.run(run_sql(server, f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            AlembicCommands(sqlalchemy_config=sqlalchemy_config(Settings(database_url=url))).upgrade("head")
        yield url
    finally:
        asyncio.run(run_sql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
