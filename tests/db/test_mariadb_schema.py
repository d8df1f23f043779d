"""One migration history, two servers: at head, MariaDB's schema (0007) is PostgreSQL's (0001 to 0006), table by
table, column by column, index by index, except for the differences the README's table names, listed here."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from advanced_alchemy.alembic.commands import AlembicCommands
from sqlalchemy import inspect, types
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from service.core.settings import Settings
from service.db.config import VERSION_TABLE, async_url, sqlalchemy_config
from service.db.queue import TABLES as PGQUEUER_TABLES
from tests import mariadb
from tests.database import run_sql

# The job queue is pgqueuer's tables on PostgreSQL, `import_queue` on MariaDB; the outbox's order is the writer's
# transaction id on PostgreSQL (`xid`), the sequencer's stamp on MariaDB (`seq`, stamped by a process: its last
# stamp in `developer_events_sequence`); a case-insensitive unique email is an expression index on PostgreSQL, a
# generated column `email_lower` with the unique index on MariaDB (which indexes no expression).
OWN_TABLES = {"postgresql": {*PGQUEUER_TABLES}, "mariadb": {"import_queue", "developer_events_sequence"}}
OWN_COLUMNS = {
    "postgresql": {("developer_events", "xid"), ("developer_events_horizon", "xid")},
    "mariadb": {
        ("developer_events", "seq"),
        ("developer_events_horizon", "seq"),
        ("developers", "email_lower"),
        ("users", "email_lower"),
    },
}
OWN_INDEXES = {"postgresql": {"ix_developer_events_xid_id"}, "mariadb": {"ix_developer_events_seq_id"}}
# PostgreSQL's CHECK that emails are in NFC: MariaDB has no normalize() (the service's decoders put text in NFC).
OWN_CHECKS = {"postgresql": {"ck_developers_email_nfc", "ck_users_email_nfc"}, "mariadb": set[str]()}
# A list of specialties: an array of text on PostgreSQL, a JSON array on MariaDB (which has no arrays).
LISTS = {("developer_events", "specialties")}
# Type families: what each server calls the same kind of column.
FAMILIES: list[tuple[str, tuple[type[Any], ...]]] = [
    ("list", (types.ARRAY,)),
    ("bool", (types.Boolean,)),  # before integers: MariaDB's BOOLEAN is TINYINT(1), which reflects as Boolean
    ("integer", (types.Integer,)),
    ("text", (types.String, types.Text)),
    ("timestamp", (types.DateTime,)),
    ("json", (types.JSON,)),
    ("bytes", (types.LargeBinary,)),
]


def _family(type_: Any) -> str:
    if type(type_).__name__ == "LONGTEXT":  # MariaDB's JSON: LONGTEXT with a json_valid() CHECK
        return "json"
    if type(type_).__name__.endswith("BLOB"):
        return "bytes"
    if type(type_).__name__ == "TINYINT" and getattr(type_, "display_width", None) == 1:
        return "bool"  # MariaDB's BOOLEAN
    for name, classes in FAMILIES:
        if isinstance(type_, classes):
            return name
    return type(type_).__name__


def _schema(connection: Connection, server: str) -> dict[str, Any]:
    inspector = inspect(connection)
    schema: dict[str, Any] = {}
    for table in sorted(set(inspector.get_table_names()) - OWN_TABLES[server] - {VERSION_TABLE}):
        columns = {
            column["name"]: (
                "list" if (table, column["name"]) in LISTS else _family(column["type"]),
                column["nullable"],
            )
            for column in inspector.get_columns(table)
            if (table, column["name"]) not in OWN_COLUMNS[server]
        }
        indexes = {
            index["name"]: bool(index["unique"])
            for index in inspector.get_indexes(table)
            if index["name"] not in OWN_INDEXES[server]
        }
        # PostgreSQL's names carry the table's prefix twice (`ck_users_ck_users_role_known`: migrations 0001 to 0006
        # gave names the naming convention prefixed again); compared without the repeat.
        checks = {
            check["name"].replace(f"ck_{table}_ck_{table}_", f"ck_{table}_")
            for check in inspector.get_check_constraints(table)
        } - OWN_CHECKS[server]
        keys = tuple(inspector.get_pk_constraint(table)["constrained_columns"])
        schema[table] = {"columns": columns, "indexes": indexes, "checks": checks, "primary key": keys}
    return schema


async def _read(url: str, server: str) -> dict[str, Any]:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_schema, server)
    finally:
        await engine.dispose()


def test_both_servers_hold_the_same_schema_at_head(database_url: str, mariadb_url: str) -> None:
    if mariadb.run_on_mariadb():
        pytest.skip("this run's database_url is MariaDB's too: the comparison runs in the PostgreSQL runs")
    on_postgresql = asyncio.run(_read(database_url, "postgresql"))
    on_mariadb = asyncio.run(_read(mariadb_url, "mariadb"))
    assert sorted(on_mariadb) == sorted(on_postgresql)
    for table, expected in on_postgresql.items():
        assert on_mariadb[table] == expected, table


def test_migrations_go_down_and_up_again_on_mariadb() -> None:
    with mariadb.fresh_database(mariadb.server_url()) as url:
        commands = AlembicCommands(sqlalchemy_config=sqlalchemy_config(Settings(database_url=url)))
        commands.downgrade("base")
        tables = asyncio.run(mariadb.fetch(url, "SHOW TABLES"))
        assert [row[0] for row in tables] == [VERSION_TABLE]
        commands.upgrade("head")
        tables = asyncio.run(mariadb.fetch(url, "SHOW TABLES"))
        assert len(tables) == 9, tables


def test_an_email_in_another_unicode_form_is_refused_by_postgresql_but_not_by_mariadb(
    database_url: str, mariadb_url: str
) -> None:
    """The weaker guarantee on MariaDB: the database itself does not hold emails to NFC (the API's decoders do:
    tests/developers/test_unicode.py), so SQL that goes around the service can store another form."""
    if mariadb.run_on_mariadb():
        pytest.skip("this run's database_url is MariaDB's too: the comparison runs in the PostgreSQL runs")
    decomposed = "jose\u0301@example.com"  # é as e and a combining accent: not NFC
    insert = f"INSERT INTO developers (name, email, specialty) VALUES ('José', '{decomposed}', 'rust')"
    with pytest.raises(Exception, match="email_nfc"):
        asyncio.run(run_sql(database_url, insert))
    asyncio.run(mariadb.empty(mariadb_url, "developers", "developer_events"))
    asyncio.run(mariadb.run_sql(mariadb_url, insert))
    stored = asyncio.run(mariadb.fetchval(mariadb_url, "SELECT email FROM developers"))
    assert stored == decomposed
