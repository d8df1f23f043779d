"""The engine's configuration: a failing statement's error, logged, carries no parameter values."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from service.core.settings import Settings
from service.db.config import sqlalchemy_config
from tests.problems import convert

SECRET = "ada.secret@x.io"
# A statement each server refuses, in an error the problem mapping does not know, without repeating the value:
# PostgreSQL's text cannot hold a NUL (as a sign-in's once did); on MariaDB, a syntax error after the value (asyncmy
# writes the value into the statement it sends, and MariaDB quotes the statement from the error on).
REFUSED = {
    "postgresql": ("SELECT id FROM users WHERE email = :email", f"{SECRET}\x00", "FROM users WHERE email"),
    "mariadb": ("SELECT id FROM users WHERE email = :email LIMIT", SECRET, "FROM users WHERE email"),
}


async def test_statement_parameters_never_reach_logs_or_errors(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # SQLAlchemy logs every statement at INFO
    statement, value, shown = REFUSED[settings.backend]
    engine = sqlalchemy_config(settings).get_engine()
    try:
        async with engine.connect() as connection:
            with pytest.raises(sa_exc.DBAPIError) as failed:
                await connection.execute(text(statement), {"email": value})
    finally:
        await engine.dispose()
    convert(failed.value)  # the problem mapping logs an error it does not know, with its traceback
    assert f"unhandled {type(failed.value).__name__}" in caplog.text
    assert shown in caplog.text  # the statement itself may show
    assert SECRET not in caplog.text
    assert SECRET not in str(failed.value)
