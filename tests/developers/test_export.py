"""The export: its formats round-trip through the import, one snapshot whatever is written meanwhile, its
parameters and errors as problems, its concurrency limit, and its connection given back however the stream ends."""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from service.app import create_app
from service.core.settings import Settings
from service.developers.export.service import DeveloperExports
from tests.client import assert_problem, serve, token
from tests.database import connect, empty, fetchval
from tests.developers.api import bulk, people
from tests.developers.export_support import (
    MANY,
    Serving,
    checksum,
    copying,
    load,
    parse,
    paused,
    serving,
    stored,
)
from tests.developers.feed_client import scopeless_token
from tests.polling import until
from tests.postgresql_only import DEFERRABLE, EXPORT_COPY

FORMATS = ("csv", "ndjson")
MEDIA = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
# What CSV quoting and JSON escaping must both carry through: separators, quotes, line breaks, backslashes (which
# COPY's text format would double), a lone `\.` (COPY's old end-of-data marker), spaces at the ends, non-ASCII.
AWKWARD = [
    {"name": 'Ada "the Countess", Lovelace', "email": "ada@example.com", "specialty": "maths, engines"},
    {"name": "Two\nlines\r\nand a\rcarriage", "email": "lines@example.com", "specialty": "multi\nline"},
    {"name": "Back\\slash \\N \\t", "email": "back\\slash@example.com", "specialty": "\\."},
    {"name": "\\.", "email": "dot@example.com", "specialty": "tab\there"},
    {"name": "  spaced  ", "email": "o'brien+tag@example.com", "specialty": " lead"},
    {"name": "Zoë Ñandú 日本語 🚀", "email": "zoë@exämple.com", "specialty": "ünïcode"},
    {"name": "'quote' ,;|\x7f\u2028", "email": "q@example.com", "specialty": '"'},
]


def rows_of(items: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(p["name"], p["email"], p["specialty"]) for p in items]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_an_export_round_trips_through_the_import(client: httpx.AsyncClient, database_url: str, fmt: str) -> None:
    assert (await bulk(client, "json", AWKWARD + people(50))).status_code == 201
    before = await stored(database_url)

    response = await client.get("/api/developers/export", params={"format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MEDIA[fmt]
    assert response.headers["content-disposition"] == f'attachment; filename="developers.{fmt}"'
    assert "content-length" not in response.headers  # streamed
    assert parse(fmt, response.content) == before  # every row, in id order

    await empty(database_url, "developers")
    imported = await bulk(client, fmt, response.content)
    assert imported.json() == {"created": len(before), "updated": 0, "skipped": 0}, imported.text
    assert await stored(database_url) == before
    again = await client.get("/api/developers/export", params={"format": fmt})
    assert again.content == response.content


async def test_ndjson_lines_are_the_json_the_import_takes(client: httpx.AsyncClient) -> None:
    assert (await bulk(client, "json", AWKWARD)).status_code == 201
    body = (await client.get("/api/developers/export", params={"format": "ndjson"})).content
    lines = body.split(b"\n")
    assert lines.pop() == b""  # each line ends with a newline, the last one too
    assert [msgspec.json.decode(line) for line in lines] == AWKWARD
    assert lines[2] == msgspec.json.encode(AWKWARD[2])  # backslashes escaped once, as JSON does, not twice


async def test_csv_quotes_as_rfc_4180_says(client: httpx.AsyncClient) -> None:
    assert (await bulk(client, "json", AWKWARD[:2])).status_code == 201
    body = (await client.get("/api/developers/export", params={"format": "csv"})).content.decode()
    assert body == (
        "name,email,specialty\n"
        '"Ada ""the Countess"", Lovelace",ada@example.com,"maths, engines"\n'
        '"Two\nlines\r\nand a\rcarriage",lines@example.com,"multi\nline"\n'
    )


@pytest.mark.parametrize(("fmt", "empty"), [("csv", b"name,email,specialty\n"), ("ndjson", b"")])
async def test_an_empty_export(client: httpx.AsyncClient, fmt: str, empty: bytes) -> None:
    response = await client.get("/api/developers/export", params={"format": fmt})
    assert (response.status_code, response.content) == (200, empty)


async def test_the_specialty_filter_compares_in_nfc(client: httpx.AsyncClient) -> None:
    cafe = unicodedata.normalize("NFC", "café")
    assert (await bulk(client, "json", people(3, specialty=cafe) + people(4, start=3))).status_code == 201
    decomposed = unicodedata.normalize("NFD", cafe)
    response = await client.get("/api/developers/export", params={"format": "csv", "specialty": decomposed})
    assert parse("csv", response.content) == rows_of(people(3, specialty=cafe))
    none = await client.get("/api/developers/export", params={"format": "ndjson", "specialty": "nobody's"})
    assert (none.status_code, none.content) == (200, b"")


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({}, "format"),
        ({"format": "xml"}, "format"),
        ({"format": "CSV"}, "format"),
        ({"format": "csv", "specialty": ""}, "specialty"),
        ({"format": "csv", "specialty": " \t"}, "specialty"),
        ({"format": "csv", "specialty": "x" * 101}, "specialty"),
        ({"format": "csv", "specialty": "a\x00b"}, "specialty"),
        ({"format": "csv", "speciality": "compilers"}, "speciality"),
    ],
)
async def test_bad_parameters_are_400_problems(client: httpx.AsyncClient, params: dict[str, str], key: str) -> None:
    problem = assert_problem(await client.get("/api/developers/export", params=params), 400)
    if not params:  # Litestar names a missing parameter in the detail only
        assert f"parameter '{key}'" in problem["detail"], problem
        return
    # The parameter as the client sent it (`format`, which the handler's own name, `export_format`, was not).
    assert [item["key"] for item in problem["extra"]] == [key], problem
    assert all(item["source"] == "query" for item in problem["extra"]), problem


async def test_exporting_needs_the_read_scope(client: httpx.AsyncClient) -> None:
    viewer = await client.get(
        "/api/developers/export", params={"format": "csv"}, headers={"Authorization": f"Bearer {token('viewer')}"}
    )
    assert viewer.status_code == 200
    scopeless = {"Authorization": f"Bearer {scopeless_token()}"}
    assert_problem(await client.get("/api/developers/export", params={"format": "csv"}, headers=scopeless), 403)
    anonymous = {"Authorization": ""}
    assert_problem(await client.get("/api/developers/export", params={"format": "csv"}, headers=anonymous), 401)


async def test_a_starved_pool_is_503_with_retry_after(settings: Settings) -> None:
    starved = msgspec.structs.replace(settings, db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.3)
    app = create_app(starved)
    try:
        async with serve(app) as client:
            exports: DeveloperExports = app.state.exports
            held = await exports.engine.raw_connection()  # the pool's only connection
            try:
                response = await client.get("/api/developers/export", params={"format": "csv"})
            finally:
                held.close()
            assert_problem(response, 503)
            assert response.headers["retry-after"] == str(settings.retry_after_seconds)
            assert exports.running == 0
            assert (await client.get("/api/developers/export", params={"format": "csv"})).status_code == 200
    finally:
        await app.state.exports.engine.dispose()


@pytest.mark.parametrize("fmt", FORMATS)
@EXPORT_COPY
async def test_an_export_sees_exactly_the_snapshot_at_its_start(settings: Settings, fmt: str) -> None:
    async with serving(settings) as run:
        await load(run.database_url, MANY)
        snapshot = await stored(run.database_url)  # the test's own snapshot, taken before the export starts
        async with paused(run.api, fmt) as (_, first, rest):
            assert await copying(run.database_url)  # PostgreSQL is still producing rows: the writes come mid-COPY
            writer = await connect(run.database_url)
            try:
                await load(run.database_url, 2_000, start=MANY)  # inserted, committed
                renamed = f"UPDATE developers SET name = name || ' (renamed)' WHERE id % 300 = 0 AND id <= {MANY}"
                updated = await writer.execute(renamed)
                deleted = await writer.execute(f"DELETE FROM developers WHERE id % 300 = 1 AND id <= {MANY}")
            finally:
                await writer.close()
            assert (updated, deleted) == ("UPDATE 1000", "DELETE 1000")
            assert await copying(run.database_url)  # still mid-COPY after the three commits
            body = first + b"".join([piece async for piece in rest])
        now = await stored(run.database_url)
        assert (len(now), checksum(now) != checksum(snapshot)) == (MANY + 1_000, True)  # the table did change
        exported = parse(fmt, body)
        assert (len(exported), checksum(exported)) == (len(snapshot), checksum(snapshot))
        assert run.checked_out() == 0


@EXPORT_COPY
async def test_a_client_that_leaves_mid_export_frees_its_connection(settings: Settings) -> None:
    async with serving(settings, export_max_concurrent=1) as run:
        await load(run.database_url, MANY)
        async with paused(run.api, "ndjson"):
            (pid,) = await copying(run.database_url)
            assert (run.checked_out(), run.exports.running) == (1, 1)
        # The client has closed its connection mid-body: the export's connection is closed, not pooled mid-COPY.

        async def freed() -> bool:
            gone = not await fetchval(run.database_url, f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}")
            return gone and run.checked_out() == 0 and run.exports.running == 0

        await until(freed, "the export's connection to be given back and its server process to end")
        whole = await run.api.get("/api/developers/export", params={"format": "csv"})  # the slot is free again
        assert len(parse("csv", whole.content)) == MANY


async def test_exports_beyond_the_limit_are_503_with_retry_after(settings: Settings) -> None:
    async with serving(settings, export_max_concurrent=2) as run:
        await load(run.database_url, MANY)
        async with paused(run.api, "csv"), paused(run.api, "ndjson"):
            busy = await run.api.get("/api/developers/export", params={"format": "csv"})
            problem = assert_problem(busy, 503)
            assert "EXPORT_MAX_CONCURRENT" in problem["detail"]
            assert busy.headers["retry-after"] == str(settings.retry_after_seconds)
            assert run.checked_out() == 2  # the refused export took no connection
            listing = await run.api.get("/api/developers", params={"limit": 1})  # requests still get theirs
            assert listing.status_code == 200
        await until(lambda: _idle(run.exports), "both exports to end")
        assert (await run.api.get("/api/developers/export", params={"format": "csv"})).status_code == 200


async def _idle(exports: DeveloperExports) -> bool:
    return exports.running == 0


@pytest.fixture
async def run(settings: Settings) -> AsyncIterator[Serving]:
    # Served before the test: Litestar's logging setup replaces the root handlers caplog has added by then.
    async with serving(settings) as run:
        yield run


@EXPORT_COPY
async def test_an_error_mid_stream_cuts_the_answer_before_its_end(
    run: Serving, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="service.developers.export")
    await load(run.database_url, MANY)
    async with paused(run.api, "ndjson") as (_, _first, rest):
        (pid,) = await copying(run.database_url)
        assert await fetchval(run.database_url, f"SELECT pg_terminate_backend({pid})")
        with pytest.raises(httpx.RemoteProtocolError):  # the body ends without chunked encoding's end
            async for _ in rest:
                pass
    await until(lambda: _idle(run.exports), "the failed export to be given up")
    assert run.checked_out() == 0
    (line,) = [r.getMessage() for r in caplog.records if r.name == "service.developers.export"]
    assert line.startswith("export failed after ")


async def test_a_copy_past_its_statement_timeout_is_cut(settings: Settings) -> None:
    async with serving(settings, export_statement_timeout_ms=300) as run:
        # Wide rows: an export that the socket buffers could hold whole would be done before the timeout fires.
        await load(run.database_url, MANY, wide=True)
        async with paused(run.api, "csv") as (_, _first, rest):
            # PostgreSQL acts on the timeout once its blocked write to us completes: when the client reads again.
            await asyncio.sleep(1)
            with pytest.raises(httpx.RemoteProtocolError):
                async for _ in rest:
                    pass
        await until(lambda: _idle(run.exports), "the export to be given up")
        assert run.checked_out() == 0
        listing = await run.api.get("/api/developers", params={"limit": 1})  # the timeout was the export's own
        assert listing.status_code == 200


@EXPORT_COPY
async def test_a_client_that_reads_nothing_is_cut_and_frees_its_connection(settings: Settings) -> None:
    async with serving(settings, export_idle_timeout_seconds=0.5) as run:
        await load(run.database_url, MANY)
        async with paused(run.api, "ndjson") as (_, _first, rest):
            (pid,) = await copying(run.database_url)

            async def freed() -> bool:
                gone = not await fetchval(run.database_url, f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}")
                return gone and run.checked_out() == 0 and run.exports.running == 0

            await until(freed, "the stalled export's connection to be closed while its client stays")
            with pytest.raises(httpx.RemoteProtocolError):
                async for _ in rest:
                    pass


@DEFERRABLE
async def test_the_snapshot_waits_for_serializable_writers_within_the_statement_timeout(settings: Settings) -> None:
    # DEFERRABLE: the export starts only from a snapshot no running serializable writer can still invalidate.
    app = create_app(msgspec.structs.replace(settings, db_statement_timeout_ms=300))
    writer = await connect(settings.database_url)
    try:
        async with serve(app) as client:
            await writer.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
            await writer.execute("INSERT INTO developers (name, email, specialty) VALUES ('W', 'w@x.io', 'w')")
            waited = await client.get("/api/developers/export", params={"format": "csv"})
            problem = assert_problem(waited, 503)
            assert "statement timeout" in problem["detail"]
            assert app.state.exports.running == 0
            await writer.execute("COMMIT")
            after = await client.get("/api/developers/export", params={"format": "csv"})
            assert ("W", "w@x.io", "w") in parse("csv", after.content)
    finally:
        await writer.close()
        await app.state.exports.engine.dispose()
        await empty(settings.database_url, "developers")
