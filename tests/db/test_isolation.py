"""Isolation levels per write (service.db.isolation): a SERIALIZABLE write that collides with a concurrent
transaction is replayed whole and succeeds; one that collides on every attempt is 503 after ATTEMPTS, with
nothing written; and the last-admin rule holds when two removals race.

The collisions are real PostgreSQL errors, forced deterministically: either a transaction held open by the test
on its own connection, which the request's UPDATE waits for and which then commits (so the request's snapshot is
stale: 40001, "could not serialize access due to concurrent update"), or a trigger that raises the error's
SQLSTATE on the attempts the test chooses, counting every attempt in a sequence (which no rollback undoes).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, get_args

import asyncpg
import httpx
import pytest

from service.db.isolation import ATTEMPTS, WRITES, Operation
from tests.accounts.api import account
from tests.client import assert_problem
from tests.database import connect, empty, fetch, fetchval, run_sql
from tests.postgresql_only import SERIALIZABLE_SNAPSHOTS
from tests.system.scrape import scrape, value

RETRIES = "devdir_db_retries_total"
ERRORS = "devdir_db_errors_total"

_FORCE = """
    CREATE SEQUENCE forced_attempts;
    CREATE FUNCTION force_conflict() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF nextval('forced_attempts') <= {failing} THEN
            RAISE EXCEPTION 'forced by the test' USING ERRCODE = '{sqlstate}';
        END IF;
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
    END $$;
    CREATE {trigger}"""
# At the statement, or at COMMIT (a deferred constraint trigger runs then, as SERIALIZABLE's own checks may).
_TRIGGERS = {
    "statement": "TRIGGER force_conflict BEFORE {events} ON users FOR EACH ROW EXECUTE FUNCTION force_conflict()",
    "commit": "CONSTRAINT TRIGGER force_conflict AFTER {events} ON users DEFERRABLE INITIALLY DEFERRED "
    "FOR EACH ROW EXECUTE FUNCTION force_conflict()",
}
_UNFORCE = """
    DROP TRIGGER IF EXISTS force_conflict ON users;
    DROP FUNCTION IF EXISTS force_conflict();
    DROP SEQUENCE IF EXISTS forced_attempts"""
# The request's UPDATE waiting for the row the test's transaction holds.
_WAITING = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = 'devdir' AND wait_event_type = 'Lock'"""


def test_every_write_operation_declares_a_level() -> None:
    assert set(WRITES) == set(get_args(Operation))
    # Only the stronger levels are replayed: READ COMMITTED writes have no serialization failure to replay.
    assert {op for op, declared in WRITES.items() if declared.replay} == {"accounts.update", "accounts.delete"}
    assert all(declared.level == "SERIALIZABLE" for declared in WRITES.values() if declared.replay)


@pytest.fixture
async def admins(client: httpx.AsyncClient) -> tuple[int, int]:
    """Two active admins, `a` and `b`: either may be demoted, not both."""
    a = await account(client, "a@x.io", "admin")
    b = await account(client, "b@x.io", "admin")
    return a["id"], b["id"]


@pytest.fixture
async def forced(database_url: str) -> AsyncIterator[Any]:
    """Call with (failing, sqlstate, when): the first `failing` attempts at changing a user raise `sqlstate`, at
    the statement or at COMMIT."""

    async def force(failing: int, sqlstate: str, when: str = "statement", events: str = "UPDATE OR DELETE") -> None:
        trigger = _TRIGGERS[when].format(events=events)
        await run_sql(database_url, _FORCE.format(failing=failing, sqlstate=sqlstate, trigger=trigger))

    try:
        yield force
    finally:
        await run_sql(database_url, _UNFORCE)


async def holding(database_url: str, *statements: str) -> asyncpg.Connection:
    """A connection inside a transaction that has run `statements` (and holds their row locks)."""
    holder = await connect(database_url)
    await holder.execute("BEGIN")
    for statement in statements:
        await holder.execute(statement)
    return holder


async def commit_once_waited_on(database_url: str, holder: asyncpg.Connection) -> None:
    """Commit the holder's transaction once a request's statement is waiting for its locks. (Watched from a
    connection of its own, outside any transaction: one keeps its first view of pg_stat_activity to its end.)"""
    watcher = await connect(database_url)
    try:
        for _ in range(1000):
            if await watcher.fetchval(_WAITING):
                await holder.execute("COMMIT")
                return
            await asyncio.sleep(0.01)
    finally:
        await watcher.close()
    raise AssertionError("no request ever waited for the held row")


async def users(database_url: str) -> list[tuple[str, str, bool]]:
    rows = await fetch(database_url, "SELECT email, role, is_active FROM users ORDER BY email")
    return [tuple(row) for row in rows]  # type: ignore[misc]


@SERIALIZABLE_SNAPSHOTS
async def test_a_concurrent_write_is_replayed_and_the_change_succeeds(
    client: httpx.AsyncClient, database_url: str, admins: tuple[int, int]
) -> None:
    _, b = admins
    before = await scrape(client)
    # Another transaction has written b's row and not committed yet: the request reads the admins (b still an
    # admin in its snapshot), then its UPDATE waits for that row; the other commits, so the request's snapshot is
    # stale, and PostgreSQL fails it with 40001. Replayed on a fresh snapshot, it succeeds.
    holder = await holding(database_url, f"UPDATE users SET updated_at = now() WHERE id = {b}")
    try:
        request = asyncio.create_task(client.patch(f"/api/users/{b}", json={"role": "editor"}))
        await commit_once_waited_on(database_url, holder)
        response = await request
    finally:
        await holder.close()
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "editor"
    assert await users(database_url) == [("a@x.io", "admin", True), ("b@x.io", "editor", True)]
    after = await scrape(client)
    assert value(after, RETRIES, operation="accounts.update") - value(before, RETRIES, operation="accounts.update") == 1
    assert value(after, ERRORS, kind="conflict") == value(before, ERRORS, kind="conflict")


@SERIALIZABLE_SNAPSHOTS
async def test_a_removal_racing_another_is_replayed_into_a_409_never_zero_admins(
    client: httpx.AsyncClient, database_url: str, admins: tuple[int, int]
) -> None:
    a, b = admins
    # The other transaction demotes a (and holds b's row, so the request reads before it commits). The request,
    # demoting b, first read two admins; were it not replayed it would now leave none.
    holder = await holding(
        database_url,
        f"UPDATE users SET role = 'viewer' WHERE id = {a}",
        f"UPDATE users SET updated_at = now() WHERE id = {b}",
    )
    try:
        request = asyncio.create_task(client.patch(f"/api/users/{b}", json={"is_active": False}))
        await commit_once_waited_on(database_url, holder)
        response = await request
    finally:
        await holder.close()
    assert_problem(response, 409)
    assert await users(database_url) == [("a@x.io", "viewer", True), ("b@x.io", "admin", True)]


async def test_two_admins_removing_each_other_at_once_leave_one(
    client: httpx.AsyncClient, database_url: str, admins: tuple[int, int]
) -> None:
    a, b = admins
    for _ in range(3):
        answers = await asyncio.gather(
            client.patch(f"/api/users/{a}", json={"role": "viewer"}), client.delete(f"/api/users/{b}")
        )
        assert sorted(answer.status_code for answer in answers) in ([204, 409], [200, 409]), [
            answer.text for answer in answers
        ]
        left = await fetch(database_url, "SELECT id FROM users WHERE role = 'admin' AND is_active")
        assert len(left) == 1
        # Both admins again for the next round.
        await empty(database_url, "users")
        a = (await account(client, "a@x.io", "admin"))["id"]
        b = (await account(client, "b@x.io", "admin"))["id"]


@pytest.mark.parametrize(("sqlstate", "when"), [("40001", "statement"), ("40001", "commit"), ("40P01", "statement")])
@SERIALIZABLE_SNAPSHOTS
async def test_a_conflict_that_clears_is_replayed_until_it_succeeds(
    client: httpx.AsyncClient, database_url: str, admins: tuple[int, int], forced: Any, sqlstate: str, when: str
) -> None:
    _, b = admins
    await forced(ATTEMPTS - 1, sqlstate, when)  # every attempt but the last fails
    response = await client.patch(f"/api/users/{b}", json={"role": "viewer"})
    assert response.status_code == 200, response.text
    assert await fetchval(database_url, "SELECT last_value FROM forced_attempts") == ATTEMPTS
    assert await users(database_url) == [("a@x.io", "admin", True), ("b@x.io", "viewer", True)]
    assert value(await scrape(client), RETRIES, operation="accounts.update") == ATTEMPTS - 1


@pytest.mark.parametrize("when", ["statement", "commit"])
@SERIALIZABLE_SNAPSHOTS
async def test_a_conflict_that_persists_is_503_after_every_attempt_and_writes_nothing(
    client: httpx.AsyncClient, database_url: str, admins: tuple[int, int], forced: Any, when: str
) -> None:
    _, b = admins
    before = await scrape(client)
    await forced(ATTEMPTS + 10, "40001", when)  # more failures than attempts
    response = await client.delete(f"/api/users/{b}")
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    assert await fetchval(database_url, "SELECT last_value FROM forced_attempts") == ATTEMPTS
    assert await users(database_url) == [("a@x.io", "admin", True), ("b@x.io", "admin", True)]
    after = await scrape(client)
    assert value(after, RETRIES, operation="accounts.delete") - value(before, RETRIES, operation="accounts.delete") == (
        ATTEMPTS - 1
    )
    assert value(after, ERRORS, kind="conflict") - value(before, ERRORS, kind="conflict") == 1


@SERIALIZABLE_SNAPSHOTS
async def test_a_read_committed_write_is_not_replayed(
    client: httpx.AsyncClient, database_url: str, forced: Any
) -> None:
    # Creating an account is READ COMMITTED: a deadlock there is answered 503 at once, not run again.
    await forced(100, "40P01", events="INSERT")
    response = await client.post("/api/users", json={"email": "c@x.io", "password": "a password long enough"})
    assert_problem(response, 503)
    assert await fetchval(database_url, "SELECT last_value FROM forced_attempts") == 1
    assert await users(database_url) == []
