"""What the driver said: asyncpg's or asyncmy's own exception under the DBAPI wrapper SQLAlchemy raises, and what
it means to the service (a broken unique index, a transaction worth replaying, a timeout), whichever server said it.

PostgreSQL names its errors by SQLSTATE and its constraints by name; MariaDB by a numeric error code, with the
index's name only in the message. The driver's exception tells which server spoke, so the two are told apart here,
once, by what was raised.
"""

from __future__ import annotations

import re

from asyncmy.errors import MySQLError
from sqlalchemy import exc as sa_exc

# MariaDB's error codes the service acts on (mysqld_error.h).
DUP_ENTRY = 1062  # a unique index refused a row
LOCK_WAIT_TIMEOUT = 1205  # innodb_lock_wait_timeout passed waiting for a row lock
LOCK_DEADLOCK = 1213  # InnoDB chose this transaction to end a deadlock; it was rolled back
STATEMENT_TIMEOUT = 1969  # max_statement_time passed (MariaDB)
MYSQL_STATEMENT_TIMEOUT = 3024  # max_execution_time passed (MySQL)
CONSTRAINT_FAILED = 4025  # a CHECK constraint refused a row (MariaDB)

# "Try the transaction again": PostgreSQL's serialization_failure and deadlock_detected, MariaDB's deadlock.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
RETRYABLE_CODES = frozenset({LOCK_DEADLOCK})
# MariaDB's messages name the index or constraint: "Duplicate entry 'ada@x.io' for key 'uq_developers_email_lower'",
# "CONSTRAINT `ck_developers_name_length` failed for `db`.`developers`".
_DUPLICATE = re.compile(r"^Duplicate entry '(?P<value>.*)' for key '(?P<name>[^']+)'$", re.DOTALL)
_CHECK = re.compile(r"^CONSTRAINT `(?P<name>[^`]+)` failed")


def driver_error(exc: BaseException) -> BaseException:
    """The driver's exception behind a SQLAlchemy error (its adapter keeps asyncpg's as the cause, asyncmy's as
    `orig`), or behind the adapter's own error as a connect through `engine.raw_connection()` raises it (with the
    driver's as `orig`: the hot reads' and the export's checkout, when the server refuses a new connection); `exc`
    itself otherwise, as when the bulk paths' COPY raises asyncpg's exception directly."""
    orig = getattr(exc, "orig", None)
    if isinstance(exc, sa_exc.EmulatedDBAPIException):
        return orig or exc
    return getattr(orig, "__cause__", None) or orig or exc


def sqlstate(exc: BaseException) -> str | None:
    """PostgreSQL's SQLSTATE for the error, None if PostgreSQL did not raise it."""
    code = getattr(driver_error(exc), "sqlstate", None)
    return code if isinstance(code, str) else None


def mysql_code(exc: BaseException) -> int | None:
    """MariaDB's (or MySQL's) error code for the error, None if neither raised it."""
    error = driver_error(exc)
    if not isinstance(error, MySQLError):
        return None
    args = list(error.args)
    code = args[0] if len(args) == 2 else None  # asyncmy's are (code, message)
    return code if isinstance(code, int) else None


def violated_constraint(exc: BaseException) -> str | None:
    """The name of the constraint or unique index an integrity error broke, as the server reports it."""
    name = getattr(driver_error(exc), "constraint_name", None)
    if isinstance(name, str):
        return name
    matched = _mysql_match(exc)
    return None if matched is None else matched["name"]


def duplicate_value(exc: BaseException) -> str | None:
    """The value a unique index refused, as the server reports it: PostgreSQL's "Key (lower(email))=(ada@x.io)
    already exists.", MariaDB's "Duplicate entry 'ada@x.io' ..." (the index's own column, lower(email), either way)."""
    detail = getattr(driver_error(exc), "detail", None)
    if isinstance(detail, str):
        return detail.partition(")=(")[2].rpartition(") already exists")[0] or None
    matched = _mysql_match(exc)
    return None if matched is None or mysql_code(exc) != DUP_ENTRY else matched["value"]


def is_retryable(exc: BaseException) -> bool:
    """A serialization failure or a deadlock: the transaction was rolled back and may simply be run again."""
    return sqlstate(exc) in RETRYABLE_SQLSTATES or mysql_code(exc) in RETRYABLE_CODES


def is_conflict(exc: BaseException) -> bool:
    """A collision with a concurrent transaction: a retryable one, or (MariaDB) a row lock waited on too long."""
    return is_retryable(exc) or mysql_code(exc) == LOCK_WAIT_TIMEOUT


def is_statement_timeout(exc: BaseException) -> bool:
    """MariaDB's max_statement_time or MySQL's max_execution_time ended the statement (PostgreSQL's statement
    timeout is asyncpg's QueryCanceledError, which web.problems names itself)."""
    return mysql_code(exc) in {STATEMENT_TIMEOUT, MYSQL_STATEMENT_TIMEOUT}


def error_name(exc: BaseException) -> str:
    """The driver's exception class, with its SQLSTATE or error code: what a log line or /ready says."""
    error = driver_error(exc)
    if (state := sqlstate(exc)) is not None:
        return f"{type(error).__name__} (SQLSTATE {state})"
    if (code := mysql_code(exc)) is not None:
        return f"{type(error).__name__} (error {code})"
    return type(error).__name__


def _mysql_match(exc: BaseException) -> re.Match[str] | None:
    if mysql_code(exc) not in {DUP_ENTRY, CONSTRAINT_FAILED}:
        return None
    message = str(driver_error(exc).args[1])
    return _DUPLICATE.match(message) or _CHECK.match(message)
