"""The outbox's reads, on events whose transaction ids differ in their number of digits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from service.developers.events import store
from tests.database import connect, run_sql
from tests.postgresql_only import OUTBOX_XIDS

pytestmark = OUTBOX_XIDS

# Transaction ids far below any this server hands out now, so every one of them is servable; as text, "1000" sorts
# before "99".
XIDS = [99, 100, 1000, 1000]


@pytest.fixture
async def connection(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    await run_sql(
        database_url,
        "TRUNCATE developer_events",
        *(
            f"INSERT INTO developer_events (xid, op, developer_id, specialty, specialties) "
            f"VALUES ('{xid}'::xid8, 'deleted', {n}, 's', ARRAY['s'])"
            for n, xid in enumerate(XIDS, 1)
        ),
    )
    connection = await connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()
        await run_sql(database_url, "TRUNCATE developer_events")


async def test_events_are_read_in_numeric_transaction_order(connection: asyncpg.Connection) -> None:
    events = await store.read(connection, (0, 0), 100)
    assert [event.cursor[0] for event in events] == XIDS
    assert [event.event.developer_id for event in events] == [1, 2, 3, 4]
    assert await store.latest(connection) == events[-1].cursor
    # Reading on from each cursor in turn gives the rest, in the same order: no event twice, none skipped.
    for index, event in enumerate(events):
        assert await store.read(connection, event.cursor, 100) == events[index + 1 :]


async def test_a_replay_is_in_numeric_transaction_order(connection: asyncpg.Connection) -> None:
    everything = await store.read(connection, (0, 0), 100)
    replayed = []
    after = (0, 0)
    audience = store.Audience(specialty="s", viewer=None)
    while page := await store.read_between(connection, after, everything[-1].cursor, audience, 1):
        replayed.extend(page)
        after = page[-1].cursor
    assert replayed == everything
    assert await store.count_between(connection, (0, 0), everything[-1].cursor, audience, 100) == len(XIDS)
