"""The export on MariaDB: both formats and the specialty filter, the same bytes as PostgreSQL's export of the same
rows, one snapshot whatever is written while a paused client holds the stream, the connection given back when the
client leaves, and EXPORT_MAX_CONCURRENT."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar

from service.app import create_app
from service.core.settings import Settings
from service.developers.export.mariadb import MariaDBExports
from tests import database, mariadb
from tests.client import assert_problem
from tests.developers.export_support import checksum, parse, paused
from tests.developers.feed_client import bearer
from tests.developers.test_export import AWKWARD, rows_of
from tests.polling import until
from tests.server import served

FORMATS = ("csv", "ndjson")
MANY = 300_000  # about 24 MB of NDJSON: more than every buffer between MariaDB and a client that stops reading
# An export's statement while its rows stream.
STREAMING = (
    "SELECT id FROM information_schema.processlist "
    "WHERE db = DATABASE() AND info LIKE 'SET STATEMENT max_statement_time%%'"
)
CONTROL = [{"name": "bell\x07 nul-less \x01\x1f", "email": "ctl@example.com", "specialty": "esc\x1b"}]

Row = tuple[str, str, str]


async def load(url: str, rows: list[Row]) -> None:
    """`rows` inserted in order (ids follow), 5,000 a statement, without the feed's row events (@devdir_bulk)."""
    connection = await mariadb.connect(url)
    try:
        async with connection.cursor() as cursor:
            await cursor.execute("SET @devdir_bulk = 1")
            for start in range(0, len(rows), 5000):
                await cursor.executemany(
                    "INSERT INTO developers (name, email, specialty) VALUES (%s, %s, %s)", rows[start : start + 5000]
                )
    finally:
        connection.close()


def many(count: int, start: int = 0, *, wide: bool = False) -> list[Row]:
    """`count` developers; `wide` ones (about 300 bytes a row) make an export far larger than every buffer between
    MariaDB and a client that stops reading (socket buffers grow to megabytes), so the SELECT is still sending when
    that client pauses, whatever the buffers' sizes."""
    padding = " " + "x" * 170 if wide else ""  # room for the test's " (renamed)"
    return [
        (f"Dev {i:07d}{padding}", f"dev{i}@export.io", f"spec{i % 20:02d}{padding[:90]}")
        for i in range(start, start + count)
    ]


async def stored(url: str) -> list[Row]:
    return [tuple(row) for row in await mariadb.fetch(url, "SELECT name, email, specialty FROM developers ORDER BY id")]  # type: ignore[misc]


@dataclass
class Serving:
    app: Litestar
    api: httpx.AsyncClient
    url: str

    @property
    def exports(self) -> MariaDBExports:
        exports: MariaDBExports = self.app.state.exports
        return exports

    def checked_out(self) -> int:
        return int(self.exports.engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def serving(settings: Settings, **overrides: Any) -> AsyncIterator[Serving]:
    """An app on MariaDB served over a socket (streams are not buffered whole), on an empty developers table."""
    await mariadb.empty(settings.database_url, "developers", "developer_events")
    app = create_app(msgspec.structs.replace(settings, **overrides))
    try:
        async with served(app) as url, httpx.AsyncClient(base_url=url, headers=bearer(), timeout=60) as api:
            yield Serving(app, api, settings.database_url)
    finally:
        await app.state.exports.engine.dispose()
        await mariadb.empty(settings.database_url, "developers", "developer_events")


async def streaming(url: str) -> list[int]:
    return [int(row[0]) for row in await mariadb.fetch(url, STREAMING)]


async def export(api: httpx.AsyncClient, fmt: str, **params: str) -> bytes:
    response = await api.get("/api/developers/export", params={"format": fmt, **params})
    assert response.status_code == 200, response.text
    return response.content


@pytest.mark.parametrize("fmt", FORMATS)
async def test_both_formats_carry_every_row_in_id_order(mariadb_settings: Settings, fmt: str) -> None:
    async with serving(mariadb_settings) as run:
        rows = rows_of(AWKWARD) + many(3000)
        await load(run.url, rows)
        response = await run.api.get("/api/developers/export", params={"format": fmt})
        assert response.status_code == 200
        assert response.headers["content-disposition"] == f'attachment; filename="developers.{fmt}"'
        assert parse(fmt, response.content) == rows
        assert run.exports.running == 0
        assert run.checked_out() == 0


@pytest.mark.parametrize(("fmt", "empty"), [("csv", b"name,email,specialty\n"), ("ndjson", b"")])
async def test_an_empty_export(mariadb_settings: Settings, fmt: str, empty: bytes) -> None:
    async with serving(mariadb_settings) as run:
        assert await export(run.api, fmt) == empty


async def test_the_specialty_filter(mariadb_settings: Settings) -> None:
    async with serving(mariadb_settings) as run:
        await load(run.url, [*many(100), ("Zoë", "zoe@x.io", "Ünïcode"), ("Zoe", "zoe2@x.io", "Ünïcode ")])
        body = await export(run.api, "ndjson", specialty="spec03")
        assert parse("ndjson", body) == [row for row in many(100) if row[2] == "spec03"]
        decomposed = "U\u0308ni\u0308code"  # NFD: compared in NFC, as written
        assert parse("csv", await export(run.api, "csv", specialty=decomposed)) == [("Zoë", "zoe@x.io", "Ünïcode")]
        assert_problem(await run.api.get("/api/developers/export", params={"format": "xml"}), 400)


@pytest.mark.skipif(mariadb.run_on_mariadb(), reason="compares with PostgreSQL: the run's database is MariaDB")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("specialty", [None, "spec07", "maths, engines"])
async def test_the_bytes_are_postgresqls(
    client: httpx.AsyncClient, database_url: str, mariadb_settings: Settings, fmt: str, specialty: str | None
) -> None:
    rows = rows_of(AWKWARD) + rows_of(CONTROL) + many(5000)
    connection = await database.connect(database_url)
    try:
        await connection.copy_records_to_table("developers", records=rows, columns=["name", "email", "specialty"])
    finally:
        await connection.close()
    params = {} if specialty is None else {"specialty": specialty}
    from_postgresql = await export(client, fmt, **params)
    async with serving(mariadb_settings) as run:
        await load(run.url, rows)
        from_mariadb = await export(run.api, fmt, **params)
    assert len(from_mariadb) > 0
    assert from_mariadb == from_postgresql


@pytest.mark.parametrize("fmt", FORMATS)
async def test_an_export_sees_exactly_the_snapshot_at_its_start(mariadb_settings: Settings, fmt: str) -> None:
    async with serving(mariadb_settings) as run:
        await load(run.url, many(MANY, wide=True))
        snapshot = await stored(run.url)
        async with paused(run.api, fmt) as (_, first, rest):
            assert await streaming(run.url)  # MariaDB is still sending rows: the writes come mid-stream
            await load(run.url, many(2000, start=MANY))
            await mariadb.run_sql(
                run.url,
                f"UPDATE developers SET name = CONCAT(name, ' (renamed)') WHERE id % 300 = 0 AND id <= {MANY}",
                f"DELETE FROM developers WHERE id % 300 = 1 AND id <= {MANY}",
            )
            assert await streaming(run.url)  # still mid-stream after the three commits
            body = first + b"".join([piece async for piece in rest])
        now = await stored(run.url)
        assert (len(now), checksum(now) != checksum(snapshot)) == (MANY + 1000, True)  # the table did change
        exported = parse(fmt, body)
        assert (len(exported), checksum(exported)) == (len(snapshot), checksum(snapshot))
        assert run.checked_out() == 0


async def test_a_client_that_leaves_mid_export_frees_its_connection(mariadb_settings: Settings) -> None:
    async with serving(mariadb_settings, export_max_concurrent=1) as run:
        await load(run.url, many(MANY, wide=True))  # still streaming when its client pauses
        async with paused(run.api, "ndjson"):
            (connection,) = await streaming(run.url)
            assert (run.checked_out(), run.exports.running) == (1, 1)

        async def freed() -> bool:
            gone = not await mariadb.fetchval(
                run.url, f"SELECT count(*) FROM information_schema.processlist WHERE id = {connection}"
            )
            return gone and run.checked_out() == 0 and run.exports.running == 0

        await until(freed, "the export's connection to be closed and its slot freed")
        assert len(parse("csv", await export(run.api, "csv"))) == MANY


async def test_exports_beyond_the_limit_are_503(mariadb_settings: Settings) -> None:
    async with serving(mariadb_settings, export_max_concurrent=2) as run:
        await load(run.url, many(MANY, wide=True))  # still streaming when its client pauses
        async with paused(run.api, "csv"), paused(run.api, "ndjson"):
            busy = await run.api.get("/api/developers/export", params={"format": "csv"})
            assert "EXPORT_MAX_CONCURRENT" in assert_problem(busy, 503)["detail"]
            assert (run.exports.running, len(await streaming(run.url))) == (2, 2)  # the refused one ran nothing
        await until(lambda: run.exports.running == 0, "both exports to end")
        assert (await run.api.get("/api/developers/export", params={"format": "csv"})).status_code == 200
