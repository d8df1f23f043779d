"""Background imports on MariaDB as the tests drive them: emptied tables, an admin's client of an app (with an
in-process worker or none), an import held midway by a lock, the queue's rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncmy
import httpx

from service.app import create_app
from service.core.settings import Settings
from tests import mariadb
from tests.client import serve
from tests.polling import until

TABLES = ("developers", "import_jobs", "import_uploads", "import_queue", "developer_events")


async def reset(url: str) -> None:
    await mariadb.empty(url, *TABLES)


@asynccontextmanager
async def client_of(settings: Settings, url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's client of an app built from `settings`, on emptied import tables (emptied again afterwards)."""
    await reset(url)
    try:
        async with serve(create_app(settings)) as client:
            yield client
    finally:
        await reset(url)


@asynccontextmanager
async def row_5000_held(url: str) -> AsyncIterator[asyncmy.Connection]:
    """An open transaction holding the email of row 5,000: an import of people(n > 5000) waits there, midway (its
    first chunk's progress already reported); rolled back when the block ends."""
    connection = await mariadb.connect(url)
    try:
        await connection.begin()
        async with connection.cursor() as cursor:
            await cursor.execute("INSERT INTO developers (name, email, specialty) VALUES ('B', 'dev4999@bulk.io', 'b')")
        yield connection
        await connection.rollback()
    finally:
        connection.close()


async def queue_size(url: str) -> int:
    return int(await mariadb.fetchval(url, "SELECT count(*) FROM import_queue"))


async def until_queue_empty(url: str) -> None:
    async def empty() -> bool:
        return await queue_size(url) == 0

    await until(empty, "import_queue to empty")


async def import_connections(url: str) -> list[int]:
    """The worker connections whose statement is an import's INSERT into developers (waiting or running)."""
    rows = await mariadb.fetch(
        url,
        "SELECT id FROM information_schema.processlist "
        "WHERE db = DATABASE() AND id <> CONNECTION_ID() AND info LIKE '%%INSERT INTO developers%%'",
    )
    return [int(row[0]) for row in rows]
