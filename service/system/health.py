"""Liveness and readiness probes.

`/health` answers as long as the process serves requests: it touches nothing else, so a slow database never
gets a healthy pod restarted. `/ready` answers 200 only when the database answers and its schema is at the
migration head this code was built for, so a pod never takes traffic before the migration Job has run.

When it cannot read the database, `/ready` says why in words an operator acts on: `unreachable` (no connection,
or no answer in time: the network, the host, the port), `authentication failed` (PostgreSQL refused the
credentials: SQLSTATE class 28, a wrong password, an unknown role, no pg_hba.conf entry; MariaDB's errors 1044
and 1045) or `rejected` (the server answered with another error: no such database, too many connections,
starting up); `detail` names the driver's error and its SQLSTATE (MariaDB: its error code), never its message,
which can name the user and the host.
"""

from __future__ import annotations

import asyncio
from functools import cache

import msgspec
from alembic.script import ScriptDirectory
from litestar import Response
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db.config import MIGRATIONS_DIR, VERSION_TABLE
from service.db.errors import driver_error, error_name, mysql_code, sqlstate
from service.observability.instruments import FeedProbe
from service.web.controller import Controller
from service.web.routes import get

READY_TIMEOUT_SECONDS = 2.0
# MariaDB's refusals of the credentials: access denied to the user, or to the database.
ACCESS_DENIED = frozenset({1044, 1045})
CLIENT_ERRORS = 2000


class Health(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True, omit_defaults=True):
    status: str
    database: str
    expected_revision: str
    revision: str | None = None
    detail: str | None = None
    # The change feed's listener: "listening", or "polling" while its connection is being re-established
    # (events still flow, a poll interval late); not a reason to take the pod out of service.
    change_feed: str | None = None


@cache
def migration_head() -> str:
    """The revision the code expects, read once from the migration scripts shipped with it."""
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration head in {MIGRATIONS_DIR}")
    return head


def unready_database(exc: BaseException) -> tuple[str, str]:
    """The database's state and the detail /ready gives for `exc`, raised while reading the schema revision."""
    if isinstance(exc, TimeoutError):
        return "unreachable", f"no answer within {READY_TIMEOUT_SECONDS:g} s"
    state, code = sqlstate(exc), mysql_code(exc)
    if state is not None:
        return "authentication failed" if state.startswith("28") else "rejected", error_name(exc)
    if code is not None and code < CLIENT_ERRORS:  # a server's answer; 2000 and up are asyncmy's own (no answer)
        return "authentication failed" if code in ACCESS_DENIED else "rejected", error_name(exc)
    return "unreachable", type(driver_error(exc)).__name__


async def _schema_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        if not await connection.run_sync(lambda sync: inspect(sync).has_table(VERSION_TABLE)):
            return None
        revision = await connection.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608
        return None if revision is None else str(revision)


class HealthController(Controller):
    tags = ["system"]
    opt = {"exclude_from_auth": True}  # probes need no token: the kubelet has none

    @get("/health", summary="Liveness: 200 while the process serves")
    async def check_health(self) -> Health:
        return Health(status="ok")

    @get(
        "/ready",
        summary="Readiness: 200 when the database answers at the expected schema revision, else 503",
        responses={503: ResponseSpec(Readiness, description="Not ready: database or schema.", generate_examples=False)},
    )
    async def check_readiness(
        self, db_engine: NamedDependency[AsyncEngine], feed: NamedDependency[FeedProbe]
    ) -> Response[Readiness]:
        expected = migration_head()
        try:
            # Bounded: a probe must answer within its own timeout even when the pool is starved.
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                revision = await _schema_revision(db_engine)
        except Exception as exc:  # noqa: BLE001  (any failure to read the database means "not ready")
            database, detail = unready_database(exc)
            body = Readiness("unavailable", database, expected, detail=detail, change_feed=feed.state)
            return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)
        if revision != expected:
            body = Readiness("unavailable", "schema not at head", expected, revision=revision, change_feed=feed.state)
            return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)
        body = Readiness("ready", "ok", expected, revision=revision, change_feed=feed.state)
        return Response(body, status_code=HTTP_200_OK)
