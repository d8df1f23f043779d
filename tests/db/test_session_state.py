"""The pooler guard's judge (tests/db/session_state.py) on hand-made message sequences: each rule can fail, and
what the service sends behind a transaction-mode pooler passes. No database needed."""

from __future__ import annotations

import pytest

from tests.db.session_state import sql_reasons, statements, violations
from tests.pgwire import Message, Session

BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED;SET LOCAL statement_timeout = 30000;"


def q(sql: str) -> Message:
    return Message("Q", sql=sql)


def parse(sql: str, name: str = "") -> Message:
    return Message("P", sql=sql, statement=name)


def bind(name: str = "") -> Message:
    return Message("B", statement=name)


SYNC, IDLE, IN_BLOCK = Message("S"), Message("Z", status="I"), Message("Z", status="T")


def judged(*messages: Message, named: bool = False) -> list[str]:
    return [v.reason for v in violations([Session("devdir", list(messages))], named=named)]


def transaction(*exchange: Message) -> list[Message]:
    """BEGIN, the exchange, COMMIT, as a client waiting on each round trip sends them and hears back."""
    return [IDLE, q(BEGIN), IN_BLOCK, *exchange, q("COMMIT;"), IDLE]


def statement(sql: str, name: str = "") -> list[Message]:
    """asyncpg's two round trips for one statement: prepare (Parse, Describe, Sync), then Bind, Execute, Sync."""
    return [parse(sql, name), SYNC, IN_BLOCK, bind(name), SYNC, IN_BLOCK]


@pytest.mark.parametrize(
    "sql",
    [
        BEGIN,
        "SELECT set_config('search_path', 'public', true)",
        "SELECT pg_try_advisory_xact_lock($1)",
        "SELECT pg_advisory_xact_lock(7)",
        "CREATE TEMP TABLE staging (id int) ON COMMIT DROP",
        "UPDATE developers SET name = 'LISTEN; SET x = 1' WHERE id = $1",
        "SELECT $tag$ RESET ALL; LISTEN x $tag$ -- ; DISCARD ALL\n",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "INSERT INTO t (note) VALUES ('pg_advisory_lock is fine in a literal'' quote')",
    ],
)
def test_what_leaves_nothing_on_the_session_passes(sql: str) -> None:
    assert sql_reasons(sql) == [], sql


@pytest.mark.parametrize(
    "sql",
    [
        "SET statement_timeout = 5",
        "set session statement_timeout to 5",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        "BEGIN;SET LOCAL lock_timeout = 1;SET work_mem = '64MB'",
        "RESET ALL",
        "LISTEN developer_events",
        "unlisten *",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_try_advisory_lock_shared(1, 2)",
        "SELECT pg_advisory_unlock_all()",
        "SELECT current_setting('jit') AS cur, set_config('jit', 'off', false) AS new",
        "SELECT set_config('jit', $1, $2)",
        "PREPARE q AS SELECT 1",
        "DEALLOCATE ALL",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "CREATE TEMPORARY TABLE staging (id int)",
        "create temp table staging (id int) on commit delete rows",
        "DISCARD ALL",
        "LOAD 'auto_explain'",
        "/* comment */ SET x = 1",
    ],
)
def test_each_session_level_statement_is_caught(sql: str) -> None:
    assert sql_reasons(sql), sql
    assert judged(*transaction(q(sql))), sql  # a simple Query
    assert judged(*transaction(*statement(sql))), sql  # a Parse


def test_statements_split_outside_quotes_and_comments() -> None:
    sql = "SELECT 'a;b'; SELECT \"c;d\" -- e;f\n; SELECT $$g;h$$ /* i;j */"
    assert statements(sql) == ["SELECT 'a;b'", 'SELECT "c;d"', "SELECT $$g;h$$"]


def test_unnamed_statements_inside_transactions_pass() -> None:
    assert judged(*transaction(*statement("SELECT 1"), *statement("SELECT 2"))) == []
    assert judged(*transaction(parse("SELECT 1"), bind(), SYNC, IN_BLOCK)) == []  # one round trip


def test_a_named_statement_is_caught_in_strict_mode() -> None:
    assert judged(*transaction(*statement("SELECT 1", "__asyncpg_stmt_1__"))) == [
        "named statement '__asyncpg_stmt_1__' (only unnamed ones in strict mode)"
    ]


def test_named_statements_each_parsed_once_pass_when_prepared_statements_are_on() -> None:
    once = [*transaction(*statement("SELECT 1", "a")), *transaction(bind("a"), SYNC, IN_BLOCK)]
    assert judged(*once, named=True) == []
    again = [*once, *transaction(*statement("SELECT 1", "a"))]
    assert judged(*again, named=True) == ["statement 'a' Parsed again on the same connection"]
    assert judged(*transaction(bind("b"), SYNC, IN_BLOCK), named=True) == [
        "Bind of statement 'b', never Parsed on this connection"
    ]


def test_parse_and_bind_straddling_a_ready_for_query_idle_are_caught() -> None:
    # Outside a transaction block: the pooler may switch server connections between the two round trips.
    assert judged(IDLE, parse("SELECT 1"), SYNC, IDLE, bind(), SYNC, IDLE) == [
        "Bind of the unnamed statement Parsed before a ReadyForQuery 'I'"
    ]
    # Parsed in one transaction, bound in the next.
    assert judged(*transaction(parse("SELECT 1"), SYNC, IN_BLOCK), *transaction(bind(), SYNC, IN_BLOCK)) == [
        "Bind of the unnamed statement Parsed before a ReadyForQuery 'I'"
    ]


def test_extended_protocol_outside_a_transaction_block_is_caught_when_it_spans_a_sync_idle() -> None:
    # asyncpg's unnamed statement outside a transaction: Parse, Describe, Flush, then Parse, Bind, Execute, Sync;
    # no ReadyForQuery between them, so the pooler keeps the server connection throughout.
    flush = Message("H")
    assert judged(IDLE, parse("SELECT 1"), flush, parse("SELECT 1"), bind(), SYNC, IDLE) == []
    # A named statement Parsed outside a transaction, then bound after the ReadyForQuery 'I' that ended it: what a
    # pooler that keeps prepared statements allows, and nothing else does.
    named = [IDLE, parse("SELECT 1", "a"), SYNC, IDLE, bind("a"), SYNC, IDLE]
    assert judged(*named, named=True) == []
    assert judged(*named) == ["named statement 'a' (only unnamed ones in strict mode)"]
    # A failed transaction ('E') is still a block: its statements wait for its ROLLBACK.
    assert judged(IDLE, q(BEGIN), Message("Z", status="E"), *statement("SELECT 1")) == []


def test_each_violation_says_where_it_is() -> None:
    sessions = [Session("ok", transaction(q("SELECT 1"))), Session("devdir", transaction(q("LISTEN x")))]
    (found,) = violations(sessions)
    assert (found.connection, found.application, found.position, found.message) == (1, "devdir", 3, q("LISTEN x"))
