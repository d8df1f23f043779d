"""Exports as tests drive them: an app served over a socket with a table of many rows, the export's server
process as pg_stat_activity shows it, the rows of an export body, and the snapshot a test compares them with."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
from litestar import Litestar

from service.app import create_app
from service.core.database_urls import backend_of
from service.core.settings import Settings
from service.developers.export.service import DeveloperExports
from tests.database import connect, empty, fetch, insert
from tests.developers.feed_client import bearer
from tests.server import served

Row = tuple[str, str, str]
# Enough rows (about 24 MB of NDJSON) that an export whose client reads one piece and pauses cannot have been
# sent whole into socket buffers: PostgreSQL is still in its COPY while the test writes.
MANY = 300_000
# An export's server process, while its COPY runs.
COPYING = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY (SELECT%'"


async def load(database_url: str, rows: int, start: int = 0, *, wide: bool = False) -> None:
    """`rows` developers; `wide` ones (about 300 bytes a row) make an export far larger than every buffer between
    PostgreSQL and a client that stops reading, so the COPY is still running when that client pauses."""
    padding = " " + "x" * 180 if wide else ""
    records = [
        (f"Dev {i:07d}{padding}", f"dev{i}@export.io", f"spec{i % 20:02d}{padding[:90]}")
        for i in range(start, start + rows)
    ]
    if backend_of(database_url) == "mariadb":  # asyncmy's executemany sends multi-row INSERTs
        columns = ("name", "email", "specialty")
        await insert(database_url, "developers", [dict(zip(columns, record, strict=True)) for record in records])
        return
    conn = await connect(database_url)
    try:
        await conn.copy_records_to_table("developers", records=records, columns=["name", "email", "specialty"])
    finally:
        await conn.close()


async def stored(database_url: str) -> list[Row]:
    """The table's developers, as an export shows them: (name, email, specialty) in id order."""
    records = await fetch(database_url, "SELECT name, email, specialty FROM developers ORDER BY id")
    return [(r["name"], r["email"], r["specialty"]) for r in records]


def checksum(rows: list[Row]) -> str:
    return hashlib.sha256(msgspec.json.encode(rows)).hexdigest()


def parse(fmt: str, body: bytes) -> list[Row]:
    """An export body's rows, read as a client would: the csv module, or one JSON object a line."""
    if fmt == "csv":
        records = list(csv.reader(io.StringIO(body.decode(), newline="")))
        assert records[0] == ["name", "email", "specialty"], records[:1]
        return [(name, email, specialty) for name, email, specialty in records[1:]]
    objects = [msgspec.json.decode(line) for line in body.split(b"\n") if line]
    assert all(list(o) == ["name", "email", "specialty"] for o in objects)
    return [(o["name"], o["email"], o["specialty"]) for o in objects]


async def copying(database_url: str) -> list[int]:
    """Server processes running an export's COPY now."""
    return [r["pid"] for r in await fetch(database_url, COPYING)]


@dataclass
class Serving:
    app: Litestar
    api: httpx.AsyncClient
    database_url: str

    @property
    def exports(self) -> DeveloperExports:
        exports: DeveloperExports = self.app.state.exports
        return exports

    def checked_out(self) -> int:
        """Connections of the app's request pool in use now."""
        return int(self.exports.engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def serving(settings: Settings, **overrides: Any) -> AsyncIterator[Serving]:
    """Serve an app built from `settings` (and `overrides`) over a socket until the block ends, with an empty
    developers table before and after."""
    await empty(settings.database_url, "developers")
    app = create_app(msgspec.structs.replace(settings, **overrides))
    try:
        async with served(app) as url, httpx.AsyncClient(base_url=url, headers=bearer(), timeout=60) as api:
            yield Serving(app, api, settings.database_url)
    finally:
        await app.state.exports.engine.dispose()
        await empty(settings.database_url, "developers")


@contextlib.asynccontextmanager
async def paused(api: httpx.AsyncClient, fmt: str) -> AsyncIterator[tuple[httpx.Response, bytes, AsyncIterator[bytes]]]:
    """An export whose client has read its first piece and reads no more until the test asks: the answer, that
    piece, and the rest of the body as it is read."""
    async with api.stream("GET", "/api/developers/export", params={"format": fmt}) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        pieces = response.aiter_raw()
        first = await anext(pieces)
        yield response, first, pieces
