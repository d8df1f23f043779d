"""The same writes give the same events on both servers: the developer the triggers record (PostgreSQL's to_jsonb,
MariaDB's JSON_OBJECT), its timestamps, version and ETag, an import job's summary, and the audience rule of
replays and counts in SQL. Only the cursors and the ids the servers hand out differ."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec

from service.developers.events import mariadb_store, store
from service.developers.events.stored import Audience, StoredEvent
from tests import mariadb
from tests.database import connect, run_sql
from tests.developers.feed_mariadb import connection, reset
from tests.postgresql_only import BOTH_SERVERS

STAMP = "2025-03-14 09:26:53.589793"
WRITES = [
    "INSERT INTO developers (name, email, specialty, created_at, updated_at) "
    f"VALUES ('Ada', 'ada-{{tag}}@bodies.io', 'mathematics', '{STAMP}', '{STAMP}')",
    "UPDATE developers SET specialty = 'poetry', version = version + 1, updated_at = '2025-03-15 10:00:00' "
    "WHERE email = 'ada-{tag}@bodies.io'",
    "INSERT INTO import_jobs (status, on_conflict, media_type, rows_total, submitted_by) "
    "VALUES ('queued', 'skip', 'text/csv', 10, 7)",
    "UPDATE import_jobs SET status = 'running' WHERE submitted_by = 7",
    "DELETE FROM developers WHERE email = 'ada-{tag}@bodies.io'",
]
AUDIENCES = [Audience(s, v) for s, v in itertools.product([None, "poetry", "mathematics", "other"], [None, 7, 8])]


def _comparable(event: StoredEvent) -> dict[str, Any]:
    """The event's JSON without what the servers number differently."""
    body: dict[str, Any] = msgspec.json.decode(event.json)
    body.pop("id")
    body.pop("at")
    body.pop("developer_id", None)
    if body.get("developer"):
        body["developer"].pop("id")
        body["developer"]["etag"] = body["developer"]["etag"].split(".")[1]  # the version
    if body.get("job"):
        body["job"].pop("id")
    return body


Read = tuple[list[StoredEvent], dict[Audience, list[StoredEvent]], dict[Audience, int]]


async def _postgres_events(database_url: str) -> Read:
    conn = await connect(database_url)
    try:
        start = await store.latest(conn)
        for statement in WRITES:
            await conn.execute(statement.format(tag="both"))
        events = await store.read(conn, start, 100)
        shown = {a: await store.read_between(conn, start, events[-1].cursor, a, 100) for a in AUDIENCES}
        counts = {a: await store.count_between(conn, start, events[-1].cursor, a, 100) for a in AUDIENCES}
    finally:
        await conn.close()
        await run_sql(database_url, "DELETE FROM import_jobs WHERE submitted_by = 7")
    assert [e.cursor for e in shown[Audience(None, None)]] == [e.cursor for e in events]
    return events, shown, counts


@BOTH_SERVERS
async def test_the_same_writes_give_the_same_events_on_both_servers(database_url: str, mariadb_url: str) -> None:
    pg_events, pg_shown, pg_counts = await _postgres_events(database_url)
    await reset(mariadb_url)
    await mariadb.run_sql(mariadb_url, *(statement.format(tag="both") for statement in WRITES))
    async with connection(mariadb_url) as conn:
        await mariadb_store.stamp(conn, 100)
        events = await mariadb_store.read(conn, (0, 0), 100)
        upto = events[-1].cursor
        shown = {a: await mariadb_store.read_between(conn, (0, 0), upto, a, 100) for a in AUDIENCES}
        counts = {a: await mariadb_store.count_between(conn, (0, 0), upto, a, 100) for a in AUDIENCES}
    await reset(mariadb_url)

    assert [e["op"] for e in map(_comparable, events)] == [
        "created",
        "updated",
        "import.queued",
        "import.running",
        "deleted",
    ]
    for pg, mdb in zip(pg_events, events, strict=True):
        assert _comparable(mdb) == _comparable(pg)
        assert mdb.specialties == pg.specialties
    created = msgspec.json.decode(events[0].json)
    assert created["developer"]["created_at"] == "2025-03-14T09:26:53.589793Z"
    assert created["at"].endswith("Z")
    # Replays and counts show each audience the same events on both servers, as the feed does in process.
    for audience in AUDIENCES:
        assert [e.event.op for e in shown[audience]] == [e.event.op for e in pg_shown[audience]], audience
        assert [e.event.op for e in shown[audience]] == [e.event.op for e in events if e.shown_to(audience)], audience
        assert counts[audience] == pg_counts[audience] == len(shown[audience]), audience
