"""The MariaDB the tests use: TEST_DATABASE_URL's when the whole run is on MariaDB, else TEST_MARIADB_URL's or the
one on 127.0.0.1:3306 (root, no password), for the tests that compare the two servers or exercise MariaDB's own
implementations in every run. Where none answers, those tests skip saying so, except under TEST_REQUIRE_PARTS=1
(CI), where they fail.

SQL here goes through asyncmy directly, with `%s` placeholders.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import asyncmy
import pytest
from sqlalchemy.engine import make_url

from service.core.database_urls import backend_of

DEFAULT_URL = "mysql://root@127.0.0.1:3306/test"


def run_on_mariadb() -> bool:
    """Whether TEST_DATABASE_URL puts the whole run on MariaDB."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    return bool(url) and backend_of(url) == "mariadb"


def server_url() -> str:
    """The MariaDB the tests may use, or a skip (a failure in CI) saying why there is none."""
    url = os.environ["TEST_DATABASE_URL"] if run_on_mariadb() else os.environ.get("TEST_MARIADB_URL", DEFAULT_URL)
    try:
        asyncio.run(fetch(url, "SELECT 1"))
    except Exception as exc:  # noqa: BLE001 (any failure to reach it means the same: no MariaDB here)
        reason = f"no MariaDB answers at {make_url(url).render_as_string(hide_password=True)} ({exc})"
        if os.environ.get("TEST_REQUIRE_PARTS") == "1":
            pytest.fail(f"TEST_REQUIRE_PARTS=1 and {reason}")
        pytest.skip(reason)
    return url


async def connect(url: str, **options: Any) -> asyncmy.Connection:
    parsed = make_url(url)
    return await asyncmy.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        database=parsed.database or "",
        charset="utf8mb4",
        autocommit=True,
        init_command="SET time_zone = '+00:00'",
        **options,
    )


async def run_sql(url: str, *statements: str) -> None:
    conn = await connect(url)
    try:
        async with conn.cursor() as cursor:
            for statement in statements:
                await cursor.execute(statement)
    finally:
        conn.close()


async def fetch(url: str, query: str, *args: Any) -> Sequence[tuple[Any, ...]]:
    conn = await connect(url)
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(query, args or None)
            return list(await cursor.fetchall())
    finally:
        conn.close()


async def fetchval(url: str, query: str, *args: Any) -> Any:
    rows = await fetch(url, query, *args)
    return rows[0][0] if rows else None


CREATE_DATABASE = "CREATE DATABASE `{}` CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
DROP_DATABASE = "DROP DATABASE IF EXISTS `{}`"


@contextmanager
def fresh_database(server: str, *, migrate: bool = True) -> Iterator[str]:
    """A new, empty database on the MariaDB `server` (tests.database.fresh_database, which serves both servers)."""
    from tests.database import fresh_database as on_server

    with on_server(server, migrate=migrate) as url:
        yield url


async def empty(url: str, *tables: str) -> None:
    """Empty `tables` and restart their ids (TRUNCATE, one table at a time on MariaDB)."""
    await run_sql(url, "SET FOREIGN_KEY_CHECKS = 0", *(f"TRUNCATE TABLE {table}" for table in tables))
