"""Database errors raised by asyncpg itself (the COPY path) or through SQLAlchemy become the same answers."""

from __future__ import annotations

import logging
import traceback
import weakref
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from litestar import get
from litestar.exceptions import InternalServerException
from sqlalchemy import exc as sa_exc

from service.app import create_app
from tests.client import serve
from tests.db.unreachable import unreachable_app
from tests.pgbouncer import app_settings
from tests.problems import convert

DEADLOCK = asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
CANCELED = asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout")
GONE = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")
SHUTDOWN = asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command")
CHECK = asyncpg.exceptions.CheckViolationError("new row violates check constraint")


def wrapped(error: Exception) -> sa_exc.DBAPIError:
    """As SQLAlchemy's asyncpg dialect raises it: the dialect's error, with asyncpg's as its cause."""
    orig = Exception(str(error))
    orig.__cause__ = error
    return sa_exc.DBAPIError("statement", {}, orig)


@pytest.mark.parametrize(
    ("error", "words"),
    [(DEADLOCK, "concurrent"), (CANCELED, "statement timeout"), (GONE, "unavailable"), (SHUTDOWN, "unavailable")],
)
@pytest.mark.parametrize("through_sqlalchemy", [False, True])
def test_transient_database_errors_are_503(error: Exception, words: str, through_sqlalchemy: bool) -> None:
    problem = convert(wrapped(error) if through_sqlalchemy else error)
    assert problem.status_code == 503
    assert words in problem.detail
    assert problem.headers == {"Retry-After": "2"}


@pytest.mark.parametrize("through_sqlalchemy", [False, True])
def test_other_database_errors_stay_500(through_sqlalchemy: bool) -> None:
    problem = convert(wrapped(CHECK) if through_sqlalchemy else CHECK)
    assert problem.status_code == 500
    assert "check constraint" not in problem.detail  # internals stay in the log


def test_recursion_errors_outside_body_decoding_stay_500() -> None:
    # Bodies nested too deeply are 400s where they are decoded (service.web.json_body); anywhere else it is our bug.
    assert convert(RecursionError("maximum recursion depth exceeded")).status_code == 500


class Rows(list[tuple[str, str, str]]):
    """A chunk of an import's rows that a test can watch (a plain list cannot be weakly referenced)."""


def test_an_answered_error_keeps_no_locals_of_its_frames() -> None:
    # Something outside the request may keep its error (SQLAlchemy's failed rollback does, in a reference cycle):
    # once answered, the error must not keep the request's data alive through its frames or its cause's.
    watched: list[weakref.ref[Rows]] = []

    def copy() -> None:
        rows = Rows([("Ada", "ada@x.io", "compilers")])
        watched.append(weakref.ref(rows))
        raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    def import_rows() -> None:
        try:
            copy()
        except asyncpg.PostgresError as exc:
            raise sa_exc.InterfaceError("COPY", None, exc) from exc

    with pytest.raises(sa_exc.InterfaceError) as raised:
        import_rows()
    assert watched[0]() is not None  # held by the frame of copy(), in the traceback of the error's cause
    assert convert(raised.value).status_code == 503
    assert watched[0]() is None
    assert "in copy" in "".join(traceback.format_exception(raised.value))  # the traceback can still be logged


@pytest.fixture
async def unreachable() -> AsyncIterator[httpx.AsyncClient]:
    # Started before the test, as Litestar's logging setup replaces the root handlers caplog has added by then.
    async with serve(unreachable_app()) as client:
        yield client


async def test_a_burst_of_503s_logs_one_line(unreachable: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="service.problems")
    for _ in range(40):
        assert (await unreachable.get("/api/developers")).status_code == 503
    lines = [record.getMessage() for record in caplog.records if record.name == "service.problems"]
    assert len(lines) == 1, lines  # the next comes 10 seconds on, counting the ones held back meanwhile
    assert "unavailable" in lines[0]


async def test_litestar_500s_keep_their_message_to_the_log(database_url: str) -> None:
    @get("/test/internal", exclude_from_auth=True)
    async def internal() -> None:
        raise InternalServerException(detail="secret internal state: 'user' is not defined in scope")

    app = create_app(app_settings(database_url))
    app.register(internal)
    async with serve(app) as client:
        response = await client.get("/test/internal")
    assert response.status_code == 500
    assert "secret internal state" not in response.text
    assert response.json()["title"] == "Internal Server Error"
