"""POST /api/developers/bulk on MariaDB: the three formats and conflict modes answer as on PostgreSQL, all or
nothing, with the change feed's summary events, and the session variable that silences the row triggers cleared."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from service.app import create_app
from service.core.settings import Settings
from tests import mariadb
from tests.client import TEST_SECRET, assert_problem, serve
from tests.developers.api import FORMATS, bulk, encode, people
from tests.developers.mariadb_bulk import by_email, events, insert, last_event, table

MODES = ("error", "skip", "update")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_import_writes_every_row(mariadb_client: httpx.AsyncClient, mariadb_url: str, fmt: str) -> None:
    response = await bulk(mariadb_client, fmt, people(2500))
    assert response.status_code == 201, response.text
    assert response.json() == {"created": 2500, "updated": 0, "skipped": 0}
    rows = await mariadb.fetch(mariadb_url, "SELECT name, email, specialty, version FROM developers ORDER BY name")
    assert [tuple(row) for row in rows] == [(p["name"], p["email"], p["specialty"], 1) for p in people(2500)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", FORMATS)
async def test_conflict_modes_answer_as_on_postgresql(
    mariadb_client: httpx.AsyncClient, mariadb_url: str, fmt: str, mode: str
) -> None:
    (kept,) = await insert(mariadb_url, ("Original", "Dev2@BULK.io", "kept"))
    before = await table(mariadb_url)
    payload = [*people(4), {"name": "Last One", "email": "DEV0@bulk.io", "specialty": "latest"}]
    response = await bulk(mariadb_client, fmt, payload, mode)
    rows = await by_email(mariadb_url)
    if mode == "error":
        body = assert_problem(response, 409)
        assert body["extra"] == [
            {"email": "dev0@bulk.io", "rows": [1, 5], "reason": "repeated"},
            {"email": "dev2@bulk.io", "rows": [3], "reason": "taken"},
        ]
        assert body["detail"] == "2 email(s) already exist or repeat within the request; nothing was written"
        assert await table(mariadb_url) == before
    elif mode == "skip":
        assert response.status_code == 201, response.text
        assert response.json() == {"created": 3, "updated": 0, "skipped": 2}
        assert (rows["dev2@bulk.io"]["name"], rows["dev2@bulk.io"]["version"]) == ("Original", 1)
        assert rows["dev0@bulk.io"]["name"] == "Dev 000000"  # the first row sent wins
    else:
        assert response.status_code == 201, response.text
        assert response.json() == {"created": 3, "updated": 2, "skipped": 0}
        updated = rows["dev2@bulk.io"]
        assert (updated["id"], updated["email"], updated["name"], updated["version"]) == (
            kept,
            "Dev2@BULK.io",  # the email as first stored
            "Dev 000002",
            2,
        )
        # the last row sent wins, written once: a new row at version 1
        assert (rows["dev0@bulk.io"]["name"], rows["dev0@bulk.io"]["version"]) == ("Last One", 1)
    assert len(rows) == (1 if mode == "error" else 4)


async def test_conflicts_after_the_first_chunks_are_named_precisely(
    mariadb_client: httpx.AsyncClient, mariadb_url: str
) -> None:
    # Rows 1..10,000 are in the table before row 15,000 meets an existing email; row 20,000 repeats row 3's.
    await insert(mariadb_url, ("Existing", "DEV14999@bulk.io", "kept"))
    before = await table(mariadb_url)
    payload = people(25_000)
    payload[19_999] = {"name": "Repeat", "email": "dev2@BULK.io", "specialty": "x"}
    body = assert_problem(await bulk(mariadb_client, "ndjson", payload), 409)
    assert body["extra"] == [
        {"email": "dev2@bulk.io", "rows": [3, 20_000], "reason": "repeated"},
        {"email": "dev14999@bulk.io", "rows": [15_000], "reason": "taken"},
    ]
    assert await table(mariadb_url) == before
    body = assert_problem(await bulk(mariadb_client, "ndjson", people(30, start=14_990)), 409)
    assert body["extra"] == [{"email": "dev14999@bulk.io", "rows": [10], "reason": "taken"}]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_bad_row_after_written_chunks_leaves_the_table_unchanged(
    mariadb_client: httpx.AsyncClient, mariadb_url: str, fmt: str, mode: str
) -> None:
    await insert(mariadb_url, ("Before", "before@x.io", "kept"))
    before, events_before = await table(mariadb_url), await last_event(mariadb_url)
    payload = people(25_000)
    payload[20_000] = {"name": "Bad", "email": "not-an-email", "specialty": "x"}
    body = assert_problem(await bulk(mariadb_client, fmt, payload, mode), 400)
    assert (body["extra"][0]["row"], body["extra"][0]["key"]) == (20_001, "email")
    assert await table(mariadb_url) == before
    assert await last_event(mariadb_url) == events_before


async def test_each_chunk_is_one_summary_event(mariadb_client: httpx.AsyncClient, mariadb_url: str) -> None:
    start = await last_event(mariadb_url)
    payload = people(2500)
    payload[1] = {**payload[1], "specialty": "another"}
    body = encode("ndjson", payload)

    async def pieces() -> AsyncIterator[bytes]:  # as a network sends it, so the parser yields chunks as they fill
        lines = body.splitlines(keepends=True)
        for start in range(0, len(lines), 500):
            yield b"".join(lines[start : start + 500])

    response = await mariadb_client.post(
        "/api/developers/bulk", content=pieces(), headers={"content-type": "application/x-ndjson"}
    )
    assert response.status_code == 201, response.text
    ids = [row[0] for row in await table(mariadb_url)]
    first, second = await events(mariadb_url, start)  # the first chunk is 1,000 rows, the second 1,500
    assert first["op"] == second["op"] == "bulk"
    assert first["specialties"] == ["another", "imported"]  # code point order
    assert first["bulk"] == {
        "operation": "created",
        "count": 1000,
        "first_id": ids[0],
        "last_id": ids[999],
        "ids": ids[:1000],
        "specialties": ["another", "imported"],
    }
    assert second["bulk"] == {
        "operation": "created",
        "count": 1500,
        "first_id": ids[1000],
        "last_id": ids[-1],
        "ids": None,  # more than 1,000
        "specialties": ["imported"],
    }


async def test_an_upsert_writes_a_created_and_an_updated_summary(
    mariadb_client: httpx.AsyncClient, mariadb_url: str
) -> None:
    old = await insert(mariadb_url, ("Old 0", "dev0@bulk.io", "old"), ("Old 1", "dev1@bulk.io", "old"))
    start = await last_event(mariadb_url)
    many = [{**p, "specialty": f"s{i:03d}"} for i, p in enumerate(people(150))]
    assert (await bulk(mariadb_client, "csv", many, "update")).json() == {"created": 148, "updated": 2, "skipped": 0}
    created, updated = await events(mariadb_url, start)
    assert (created["bulk"]["operation"], created["bulk"]["count"], created["specialties"]) == ("created", 148, None)
    assert created["bulk"]["specialties"] is None  # more than 100
    assert updated["bulk"] == {
        "operation": "updated",
        "count": 2,
        "first_id": old[0],
        "last_id": old[1],
        "ids": old,
        "specialties": ["old", "s000", "s001"],  # before and after, as PostgreSQL's summary of an UPDATE
    }


async def test_one_row_written_is_its_own_event(mariadb_client: httpx.AsyncClient, mariadb_url: str) -> None:
    start = await last_event(mariadb_url)
    assert (await bulk(mariadb_client, "json", people(1))).status_code == 201
    (event,) = await events(mariadb_url, start)
    (row,) = await table(mariadb_url)
    assert (event["op"], event["developer_id"], event["specialty"], event["specialties"]) == (
        "created",
        row[0],
        "imported",
        ["imported"],
    )
    assert event["developer"]["email"] == "dev0@bulk.io"
    assert event["developer"]["version"] == 1
    assert event["developer"]["created_at"].endswith("Z")
    assert event["bulk"] is None


@pytest.fixture
async def one_connection(mariadb_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Litestar]]:
    """An app whose pool holds one connection: every request, and the test's own check, use the same session."""
    app = create_app(Settings(database_url=mariadb_url, secret_key=TEST_SECRET, db_pool_size=1, db_max_overflow=0))
    await mariadb.empty(mariadb_url, "developers")
    async with serve(app) as client:
        yield client, app
    await app.state.feed.engine.dispose()


async def session_variables(app: Litestar) -> tuple[object, ...]:
    """On the app's one pooled connection: @devdir_bulk, the UPDATE trigger's tally, whether a staging table is
    or a batch's table left, and the connection's id."""
    engine = app.plugins.get(SQLAlchemyPlugin).config[0].get_engine()
    async with engine.connect() as connection:
        row = (await connection.execute(text("SELECT @devdir_bulk, @devdir_updated_n, CONNECTION_ID()"))).one()
        tables = (await connection.execute(text("SHOW TABLES LIKE 'developers_%'"))).scalars().all()
        staged = False
        for temporary in ("developers_import", "developers_changes"):
            try:
                await connection.execute(text(f"SELECT 1 FROM {temporary} LIMIT 0"))
                staged = True
            except sa_exc.ProgrammingError:
                pass
    assert "developers_import" not in tables
    return (row[0], row[1], staged, row[2])


@pytest.mark.parametrize("mode", MODES)
async def test_the_triggers_are_back_after_a_bulk_write(
    one_connection: tuple[httpx.AsyncClient, Litestar], mariadb_url: str, mode: str
) -> None:
    client, app = one_connection
    (*_, session) = await session_variables(app)
    assert (await bulk(client, "ndjson", people(20), mode)).status_code == 201
    assert await session_variables(app) == (None, None, False, session)  # the same pooled connection
    assert_problem(await bulk(client, "ndjson", people(3), "error"), 409)  # an error after rows were written
    assert await session_variables(app) == (None, None, False, session)
    bad = people(1500, start=100)  # the first chunk (1,000 rows) is written before row 1,200 is read
    bad[1199] = {"name": "Bad", "email": "bad", "specialty": "x"}
    assert_problem(await bulk(client, "json", bad, mode), 400)
    assert await session_variables(app) == (None, None, False, session)
    assert await mariadb.fetchval(mariadb_url, "SELECT COUNT(*) FROM developers") == 20
    ids = [row[0] for row in await table(mariadb_url)]
    items = [{"id": ids[0], "name": "Renamed"}, {"id": 99_999, "name": "Nobody"}]
    assert_problem(await client.patch("/api/developers", json=items), 404)  # after its UPDATE wrote a row
    assert await session_variables(app) == (None, None, False, session)
    assert (await client.patch("/api/developers", json=items[:1])).json() == {"updated": 1}
    assert await session_variables(app) == (None, None, False, session)


async def test_a_bulk_statement_past_its_time_limit_is_503(mariadb_url: str) -> None:
    # BULK_STATEMENT_TIMEOUT_MS limits each bulk statement by itself (SET STATEMENT ... FOR): the session's own
    # max_statement_time (DB_STATEMENT_TIMEOUT_MS) is what the next request on the connection gets.
    settings = Settings(
        database_url=mariadb_url, secret_key=TEST_SECRET, db_pool_size=1, db_max_overflow=0, bulk_statement_timeout_ms=1
    )
    app = create_app(settings)
    await mariadb.empty(mariadb_url, "developers")
    try:
        async with serve(app) as client:
            body = assert_problem(await bulk(client, "ndjson", people(30_000), "update"), 503)
            assert "statement timeout" in body["detail"]
            engine = app.plugins.get(SQLAlchemyPlugin).config[0].get_engine()
            async with engine.connect() as connection:
                limit = (await connection.exec_driver_sql("SELECT @@max_statement_time")).scalar_one()
            assert float(limit) == settings.db_statement_timeout_ms / 1000
    finally:
        await app.state.feed.engine.dispose()
    assert await mariadb.fetchval(mariadb_url, "SELECT COUNT(*) FROM developers") == 0
