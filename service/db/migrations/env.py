"""Alembic environment: runs migrations over the engine advanced-alchemy's CLI hands in (asyncpg)."""

import asyncio
from typing import Any

from advanced_alchemy.base import metadata_registry
from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import service.db.models  # noqa: F401  (registers the tables on the metadata)
from service.db import queue
from service.db.pooler import CONNECT_ARGS_OPTION, DIRECT_URL_OPTION

config = context.config


def _ours(name: str | None, type_: str, _parent: object) -> bool:
    """Autogenerate leaves pgqueuer's tables alone: pgqueuer's own DDL made them (0005)."""
    return not (type_ == "table" and name in queue.TABLES)


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=metadata_registry.get(config.bind_key),  # type: ignore[attr-defined]
        version_table=config.version_table_name,  # type: ignore[attr-defined]
        compare_type=True,
        include_name=_ours,
        **kwargs,
    )


def _run_sync(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    # NullPool: a migration run opens one connection and must not keep it.
    # On DATABASE_DIRECT_URL: a migration takes locks and sets things for its session, which a transaction-mode
    # pooler in DATABASE_URL would not keep.
    url = config.engine.get_execution_options().get(DIRECT_URL_OPTION, config.db_url)  # type: ignore[attr-defined]
    # With the request pool's connect arguments where they shape the session (MariaDB's time zone and sql_mode,
    # which its triggers keep as they are created).
    options = config.engine.get_execution_options()  # type: ignore[attr-defined]
    engine: AsyncEngine = create_async_engine(
        url, poolclass=pool.NullPool, connect_args=options.get(CONNECT_ARGS_OPTION, {})
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    _configure(url=config.db_url, literal_binds=True)  # type: ignore[attr-defined]
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
