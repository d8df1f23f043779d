"""Behind PgBouncer, a pooled connection's startup parameters are what the server reports back, so the pooler
never has to set one again before a transaction.

PgBouncer compares each parameter a client gave at startup with the value the server connection it hands out
reports (ParameterStatus), as strings, and sends a `SET` before the client's query when they differ. asyncpg's
startup packet says `client_encoding 'utf-8'`, and the server reports `UTF8`: PgBouncer sent `SET
client_encoding` before every transaction, a statement and a round trip between it and the server more for
each. The proxy here sits between PgBouncer and PostgreSQL and sees everything the server receives.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from service.core.settings import Settings
from service.db.config import sqlalchemy_config
from service.db.routing import ReadRouter
from service.developers.errors import DeveloperNotFound
from service.developers.reads import DeveloperReads
from tests import pgbouncer
from tests.client import TEST_SECRET
from tests.pgwire import counting_proxy
from tests.postgresql_only import POOLER

pytestmark = POOLER

SERVER_CONNECTIONS = 2


async def test_the_pooler_sets_no_parameter_before_a_transaction(database_url: str) -> None:
    async with counting_proxy(database_url) as wire:
        with pgbouncer.running(wire.url, pool_size=SERVER_CONNECTIONS) as pooler:
            settings = Settings(
                database_url=pooler.url(database_url),
                database_direct_url=database_url,
                db_pooler="transaction",
                secret_key=TEST_SECRET,
            )
            engine = sqlalchemy_config(settings).get_engine()
            reads = DeveloperReads(ReadRouter(engine))

            async def reader() -> None:
                for developer_id in range(1, 21):
                    with pytest.raises(DeveloperNotFound):
                        await reads.one(developer_id)

            async def writer() -> None:
                for _ in range(10):
                    async with engine.begin() as connection:
                        await connection.exec_driver_sql("SELECT count(*) FROM developers")

            try:
                # Four clients on two server connections: each server connection serves several clients in turn.
                await asyncio.gather(reader(), reader(), writer(), writer())
            finally:
                await engine.dispose()

    sent = [sql for sql in wire.statements if "developers" in sql]
    assert len(sent) >= 60, sent  # the clients' statements did reach the server through the proxy
    # PgBouncer 1.18 opens a server connection without the client's application_name and sets it the first time
    # it hands that connection out: once per server connection, never again.
    sets = Counter(sql for sql in wire.statements if sql.lstrip().upper().startswith(("SET ", "RESET ")))
    assert all(count <= SERVER_CONNECTIONS for count in sets.values()), sets
