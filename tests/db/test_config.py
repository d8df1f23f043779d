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


async def test_statement_parameters_never_reach_logs_or_errors(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # SQLAlchemy logs every statement at INFO
    engine = sqlalchemy_config(settings).get_engine()
    try:
        async with engine.connect() as connection:
            with pytest.raises(sa_exc.DBAPIError) as failed:
                # PostgreSQL text cannot hold a NUL: the server refuses the statement, as it did a sign-in's.
                await connection.execute(text("SELECT id FROM users WHERE email = :email"), {"email": f"{SECRET}\x00"})
    finally:
        await engine.dispose()
    convert(failed.value)  # the problem mapping logs an error it does not know, with its traceback
    assert "unhandled DBAPIError" in caplog.text
    assert "FROM users WHERE email" in caplog.text  # the statement itself may show
    assert SECRET not in caplog.text
    assert SECRET not in str(failed.value)
