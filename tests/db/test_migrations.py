"""Migrations are the only source of the schema: they build what the models describe, and go down cleanly."""

from __future__ import annotations

import asyncio

from advanced_alchemy.alembic.commands import AlembicCommands
from advanced_alchemy.base import metadata_registry
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import service.db.models  # noqa: F401
from service.db.config import VERSION_TABLE, sqlalchemy_config
from service.settings import Settings
from tests.database import fresh_database


async def _diff(url: str) -> list[object]:
    def compare(connection: Connection) -> list[object]:
        def ours(name: str | None, type_: str, _parent: object) -> bool:
            return not (type_ == "table" and name == VERSION_TABLE)

        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": ours})
        return list(compare_metadata(context, metadata_registry.get(None)))

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    assert asyncio.run(_diff(database_url)) == []


def test_downgrade_to_base_and_back(pg_server: str) -> None:
    with fresh_database(pg_server) as url:
        commands = AlembicCommands(sqlalchemy_config=sqlalchemy_config(Settings(database_url=url)))
        commands.downgrade("base")
        assert asyncio.run(_tables(url)) == {"alembic_versions"}
        commands.upgrade("head")
        assert "developers" in asyncio.run(_tables(url))
        assert asyncio.run(_diff(url)) == []
