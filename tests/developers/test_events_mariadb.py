"""The change feed on MariaDB, followed over real sockets: events in commit order when commits cross (the
sequencer's no-gap rule), resuming, the retention horizon, bulk summaries, and the same event bodies as
PostgreSQL's. Rows are written with plain SQL, whose triggers record the events, as any writer's would."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.core.settings import Settings
from service.developers.events import mariadb_retention
from tests import mariadb
from tests.client import assert_problem
from tests.developers.feed_client import (
    Running,
    close_code,
    cursor,
    running,
    sse,
    subscribed_socket,
    ws_event,
)
from tests.developers.feed_mariadb import connection, execute, insert_sql, reset, stamped_latest
from tests.polling import until

QUIET = 0.5  # how long a test watches for an event that must not come


@pytest.fixture
async def run(mariadb_settings: Settings, mariadb_url: str) -> AsyncIterator[Running]:
    await reset(mariadb_url)
    async with running(mariadb_settings) as served:
        yield served
    await reset(mariadb_url)


async def test_events_follow_commit_order_even_when_commits_cross(run: Running, mariadb_url: str) -> None:
    """A and B overlap: A writes first (its event has the lower id), B writes later but commits first.

    A reader that followed ids would serve B's event, move its cursor past A's id, and skip A's event for ever
    once A commits. The sequencer stamps B's event while A is open (A's row is locked: SKIP LOCKED passes it over)
    and A's once A commits, above B's: subscribers get B then A, and a cursor never passes an event still to come.
    """
    async with (
        connection(mariadb_url) as a,
        connection(mariadb_url) as b,
        sse(run) as stream,
        subscribed_socket(run) as socket,
    ):
        await a.begin()
        await execute(a, insert_sql("A", "a@x.io", "order"))
        await b.begin()
        await execute(b, insert_sql("B", "b@x.io", "order"))
        await b.commit()
        first = await stream.event()  # B's, while A is still open: an open transaction holds back only its own
        assert first["developer"]["name"] == "B"
        await stream.quiet(QUIET)
        await a.commit()
        second = await stream.event()
        await stream.quiet(QUIET)
        assert [await ws_event(socket) for _ in range(2)] == [first, second]
    assert second["developer"]["name"] == "A"
    assert cursor(first["id"]) < cursor(second["id"])  # commit order
    assert first["developer_id"] > second["developer_id"]  # the id order, which a reader must not follow

    # Resuming from each cursor gives exactly what followed it: no gap, no duplicate.
    async with sse(run, {"after": "0-0"}) as replay:
        assert await replay.events(2) == [first, second]
        await replay.quiet(QUIET)
    async with sse(run, {"after": first["id"]}) as resumed:
        assert await resumed.event() == second
        await resumed.quiet(QUIET)
    async with sse(run, headers={"Last-Event-ID": second["id"]}) as resumed:
        await resumed.quiet(QUIET)
    async with subscribed_socket(run, f"after={first['id']}") as socket:
        assert await ws_event(socket) == second


async def test_resuming_replays_what_followed_then_continues_live(run: Running, mariadb_url: str) -> None:
    await mariadb.run_sql(mariadb_url, *(insert_sql(f"Dev {i}", f"d{i}@x.io", "s") for i in range(5)))
    async with sse(run, {"after": "0-0"}) as stream:
        every = await stream.events(5)
    assert [e["developer"]["name"] for e in every] == [f"Dev {i}" for i in range(5)]
    # Last-Event-ID wins over `after`, as an EventSource that reconnects sends both.
    async with sse(run, {"after": "0-0"}, headers={"Last-Event-ID": every[2]["id"]}) as stream:
        assert await stream.events(2) == every[3:]
        await mariadb.run_sql(mariadb_url, insert_sql("Live", "live@x.io", "s"))
        assert (await stream.event())["developer"]["name"] == "Live"
        await stream.quiet(QUIET)


async def test_a_cursor_below_the_retention_horizon_is_a_410(run: Running, mariadb_url: str) -> None:
    await mariadb.run_sql(mariadb_url, *(insert_sql(f"Old {i}", f"o{i}@x.io", "s") for i in range(3)))
    await until(lambda: _stamped(mariadb_url, 3), "the three events to be stamped")
    old = await stamped_latest(mariadb_url)
    await mariadb.run_sql(mariadb_url, "UPDATE developer_events SET at = at - INTERVAL 48 HOUR")
    await mariadb.run_sql(mariadb_url, insert_sql("New", "new@x.io", "s"))
    await until(lambda: _stamped(mariadb_url, 4), "the new event to be stamped")
    async with connection(mariadb_url) as conn:
        assert await mariadb_retention.delete_expired(conn, 24) == 3
        assert await mariadb_retention.delete_expired(conn, 24) == 0
    assert await mariadb.fetch(mariadb_url, "SELECT seq, id FROM developer_events_horizon") == [cursor(old)]
    for params, headers in (({"after": "0-0"}, None), ({"after": "1-1"}, None), (None, {"Last-Event-ID": "2-2"})):
        response = await run.api.get("/api/developers/events", params=params, headers=headers)
        assert_problem(response, 410)
    assert await close_code(run, "after=0-0") == 4410
    async with sse(run, {"after": old}) as stream:  # at the horizon: nothing after it was deleted
        assert (await stream.event())["developer"]["name"] == "New"


async def _stamped(url: str, count: int) -> bool:
    return bool(await mariadb.fetchval(url, "SELECT count(*) = %s FROM developer_events WHERE seq IS NOT NULL", count))


async def test_a_bulk_summary_arrives_as_one_event(run: Running, mariadb_url: str) -> None:
    """Bulk work sets @devdir_bulk, so the triggers record nothing, and writes one summary per statement."""
    async with sse(run) as stream, connection(mariadb_url) as conn:
        await conn.begin()
        await execute(conn, "SET @devdir_bulk = 1")
        await execute(
            conn,
            "INSERT INTO developers (name, email, specialty) VALUES "
            + ", ".join(f"('Bulk {i}', 'b{i}@x.io', '{s}')" for i, s in enumerate("aab")),
        )
        await execute(
            conn,
            "INSERT INTO developer_events (op, specialties, bulk) SELECT 'bulk', JSON_ARRAY('a', 'b'), JSON_OBJECT("
            "'operation', 'created', 'count', count(*), 'first_id', min(id), 'last_id', max(id), "
            "'ids', JSON_ARRAYAGG(id), 'specialties', JSON_ARRAY('a', 'b')) FROM developers",
        )
        await execute(conn, "SET @devdir_bulk = NULL")
        await conn.commit()
        event = await stream.event()
        await stream.quiet(QUIET)
    ids = [row[0] for row in await mariadb.fetch(mariadb_url, "SELECT id FROM developers ORDER BY id")]
    assert event["op"] == "bulk"
    assert (event["developer"], event["developer_id"], event["specialty"]) == (None, None, None)
    assert event["bulk"] == {
        "operation": "created",
        "count": 3,
        "first_id": ids[0],
        "last_id": ids[-1],
        "ids": ids,
        "specialties": ["a", "b"],
    }
    assert "job" not in event


async def test_a_specialty_filter_passes_only_events_that_touch_it(run: Running, mariadb_url: str) -> None:
    async with sse(run, {"specialty": "poetry"}) as stream:
        await mariadb.run_sql(
            mariadb_url,
            insert_sql("Ada", "ada@x.io", "mathematics"),
            insert_sql("Byron", "byron@x.io", "poetry"),
            "UPDATE developers SET specialty = 'poetry', version = version + 1 WHERE email = 'ada@x.io'",
        )
        created, moved = await stream.events(2)
        await stream.quiet(QUIET)
    assert (created["op"], created["developer"]["name"]) == ("created", "Byron")
    assert (moved["op"], moved["developer"]["name"], moved["specialty"]) == ("updated", "Ada", "poetry")
    # A replay applies the same filter in SQL.
    async with sse(run, {"after": "0-0", "specialty": "mathematics"}) as stream:
        replayed = await stream.events(2)
        await stream.quiet(QUIET)
    assert [(e["op"], e["developer"]["name"]) for e in replayed] == [("created", "Ada"), ("updated", "Ada")]


async def test_a_write_rolled_back_emits_nothing(run: Running, mariadb_url: str) -> None:
    async with sse(run) as stream, connection(mariadb_url) as conn:
        await conn.begin()
        await execute(conn, insert_sql("Gone", "gone@x.io", "s"))
        await conn.rollback()
        await mariadb.run_sql(mariadb_url, insert_sql("Kept", "kept@x.io", "s"))
        assert (await stream.event())["developer"]["name"] == "Kept"
        await stream.quiet(QUIET)


async def test_post_patch_delete_each_arrive_as_one_event_with_the_api_s_json(run: Running) -> None:
    async with sse(run) as stream:
        response = await run.api.post("/api/developers", json={"name": "Ada", "email": "ada@x.io", "specialty": "m"})
        assert response.status_code == 201, response.text
        created = response.json()
        event = await stream.event()
        assert event["op"] == "created"
        answer = await run.api.get(f"/api/developers/{created['id']}")
        assert event["developer"] == created | {"etag": answer.headers["etag"]}
        response = await run.api.patch(f"/api/developers/{created['id']}", json={"specialty": "poetry"})
        assert response.status_code == 200, response.text
        event = await stream.event()
        assert (event["op"], event["specialty"]) == ("updated", "poetry")
        assert event["developer"] == response.json() | {"etag": response.headers["etag"]}
        assert (await run.api.delete(f"/api/developers/{created['id']}")).status_code == 204
        event = await stream.event()
        assert (event["op"], event["developer"], event["developer_id"]) == ("deleted", None, created["id"])
        await stream.quiet(QUIET)


async def test_a_transaction_of_more_events_than_a_page_arrives_whole_and_in_order(
    run: Running, mariadb_url: str
) -> None:
    """2,500 rows in one transaction: the sequencer stamps them a page (1,000) per transaction, the feed reads on
    at once while a round stamped a full page, and the subscriber, whose queue (1,000) overflows, catches up from
    the outbox (a replay, then a count of how far behind it is) without a gap, a repeat or a resync."""
    rows = 2500
    async with sse(run) as stream, connection(mariadb_url) as conn:
        await conn.begin()
        for start in range(0, rows, 500):
            await execute(
                conn,
                "INSERT INTO developers (name, email, specialty) VALUES "
                + ", ".join(f"('Many {i}', 'm{i}@x.io', 's')" for i in range(start, start + 500)),
            )
        await conn.commit()
        events = await stream.events(rows)
        await stream.quiet(QUIET)
    assert [e["developer"]["name"] for e in events] == [f"Many {i}" for i in range(rows)]
    assert [cursor(e["id"]) for e in events] == sorted(cursor(e["id"]) for e in events)
    assert len({e["id"] for e in events}) == rows
