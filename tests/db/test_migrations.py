"""Migrations are the only source of the schema: they build what the models describe, and go down cleanly."""

from __future__ import annotations

import asyncio
import importlib.util

import asyncpg
import pytest
from advanced_alchemy.alembic.commands import AlembicCommands
from advanced_alchemy.base import metadata_registry
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import service.db.models  # noqa: F401
from service.core.settings import Settings
from service.db import queue
from service.db.config import MIGRATIONS_DIR, VERSION_TABLE, async_url, sqlalchemy_config
from service.imports.queue import install_sql
from tests.database import connect, fetch, fresh_database, run_sql
from tests.postgresql_only import MIGRATIONS, MODELS


async def _diff(url: str) -> list[object]:
    def compare(connection: Connection) -> list[object]:
        def ours(name: str | None, type_: str, _parent: object) -> bool:
            # pgqueuer's tables are pgqueuer's own DDL (migration 0005), not models of ours.
            return not (type_ == "table" and (name == VERSION_TABLE or name in queue.TABLES))

        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": ours})
        return list(compare_metadata(context, metadata_registry.get(None)))

    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


@MODELS
def test_migrated_schema_matches_the_models(database_url: str) -> None:
    assert asyncio.run(_diff(database_url)) == []


@MODELS
def test_downgrade_to_base_and_back(pg_server: str) -> None:
    with fresh_database(pg_server) as url:
        commands = AlembicCommands(sqlalchemy_config=sqlalchemy_config(Settings(database_url=url)))
        commands.downgrade("base")
        assert asyncio.run(_tables(url)) == {"alembic_versions"}
        commands.upgrade("head")
        assert "developers" in asyncio.run(_tables(url))
        assert asyncio.run(_diff(url)) == []


def _migrate(url: str, revision: str) -> None:
    AlembicCommands(sqlalchemy_config=sqlalchemy_config(Settings(database_url=url))).upgrade(revision)


@MIGRATIONS
def test_0003_puts_emails_in_nfc_and_holds_every_write_to_it(pg_server: str) -> None:
    with fresh_database(pg_server, migrate=False) as url:
        _migrate(url, "0002")
        asyncio.run(
            run_sql(
                url,
                "INSERT INTO developers (name, email, specialty) VALUES ('Zoe\u0308', 'cafe\u0301@x.io', 'pa\u0302te')",
                "INSERT INTO users (email, password_hash, role) VALUES ('cafe\u0301@x.io', 'h', 'viewer')",
            )
        )
        _migrate(url, "head")
        developers = asyncio.run(fetch(url, "SELECT name, email, specialty FROM developers"))
        assert [tuple(row) for row in developers] == [("Zo\u00eb", "caf\u00e9@x.io", "p\u00e2te")]
        assert asyncio.run(fetch(url, "SELECT email FROM users"))[0]["email"] == "caf\u00e9@x.io"

        async def write_decomposed() -> None:
            conn = await connect(url)
            try:
                with pytest.raises(asyncpg.CheckViolationError):
                    await conn.execute(
                        "INSERT INTO users (email, password_hash, role) VALUES ('e\u0301@x.io', 'h', 'viewer')"
                    )
                with pytest.raises(asyncpg.CheckViolationError):  # COPY is held to it too
                    await conn.copy_records_to_table(
                        "developers", records=[("N", "e\u0301@x.io", "s")], columns=["name", "email", "specialty"]
                    )
            finally:
                await conn.close()

        asyncio.run(write_decomposed())


@MIGRATIONS
def test_0003_stops_on_emails_that_only_differ_in_unicode_form(pg_server: str) -> None:
    with fresh_database(pg_server, migrate=False) as url:
        _migrate(url, "0002")
        asyncio.run(
            run_sql(
                url,
                "INSERT INTO developers (name, email, specialty) VALUES ('A', 'caf\u00e9@x.io', 's'), "
                "('B', 'CAFE\u0301@x.io', 's')",
            )
        )
        with pytest.raises(RuntimeError, match=r"different Unicode forms.*ids 1, 2"):
            _migrate(url, "head")


def _migration(name: str) -> object:
    path = MIGRATIONS_DIR / "versions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _statements(sql: str) -> list[str]:
    return [line for line in sql.splitlines() if line.strip() and not line.startswith("--")]


def test_the_queue_migration_is_the_installed_pgqueuers_ddl() -> None:
    """Migration 0005 holds pgqueuer's DDL as text; a pgqueuer whose DDL differs needs a migration of its own."""
    frozen = _migration("0005_import_jobs").PGQUEUER_INSTALL  # type: ignore[attr-defined]
    assert _statements(frozen) == _statements(install_sql()), "pgqueuer's DDL changed: write a migration for it"
