"""MariaDB (10.6+) and MySQL 8 on asyncmy: the URL SQLAlchemy takes, the session every connection starts with,
and the few SQL functions that need their precision spelled out.

Every connection starts in one statement sent at connect (asyncmy's `init_command`), no round trip per request:
- `time_zone = '+00:00'`: DATETIME(6) columns hold UTC, and NOW(6) writes UTC whatever the server's zone;
- a strict `sql_mode`: a value too long or out of range is an error, never silently cut (as on PostgreSQL);
- DB_STATEMENT_TIMEOUT_MS as `max_statement_time` (seconds), DB_IDLE_IN_TRANSACTION_TIMEOUT_MS as
  `idle_transaction_timeout`: the same backstops as PostgreSQL's `statement_timeout` and
  `idle_in_transaction_session_timeout` (MariaDB's names: MySQL has neither, so MySQL 8 takes them at 0).
Text travels as utf8mb4; the columns' own collation (utf8mb4_nopad_bin, migration 0007) decides comparisons
and order.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import functions
from sqlalchemy.sql.compiler import SQLCompiler

from service.core.settings import Settings

DRIVER = "mysql+asyncmy"
# MariaDB's strict mode, as close to PostgreSQL's refusals as it goes: no truncation, no zero dates, no silent
# engine change. (No ANSI_QUOTES: SQLAlchemy quotes identifiers with backticks.)
SQL_MODE = "STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"


def async_url(url: str) -> str:
    """`mysql://`, `mariadb://` and `mariadb+asyncmy://` as SQLAlchemy's asyncmy URL (MySQL's dialect serves both)."""
    return make_url(url).set(drivername=DRIVER).render_as_string(hide_password=False)


def connect_args(settings: Settings, application_name: str) -> dict[str, Any]:
    """asyncmy's connect arguments: utf8mb4, the session's settings in one statement at connect, its name."""
    assignments = ["time_zone = '+00:00'", f"sql_mode = '{SQL_MODE}'"]
    if settings.db_statement_timeout_ms:
        assignments.append(f"max_statement_time = {settings.db_statement_timeout_ms / 1000:.3f}")
    if settings.db_idle_in_transaction_timeout_ms:
        seconds = max(1, round(settings.db_idle_in_transaction_timeout_ms / 1000))
        assignments.append(f"idle_transaction_timeout = {seconds}")
    return {
        "charset": "utf8mb4",
        "init_command": "SET SESSION " + ", ".join(assignments),
        "connect_timeout": settings.db_connect_timeout,
        "program_name": application_name,
    }


def is_closed(driver: Any) -> bool:
    """Whether the server has closed asyncmy's connection, known without a round trip: asyncmy marks its stream
    broken as soon as the socket's end or an error reaches the event loop."""
    return not driver.connected or bool(driver._stream_broken)  # asyncmy has no public flag


@compiles(functions.now, "mysql")
def _now_with_microseconds(_element: functions.now, _compiler: SQLCompiler, **_: Any) -> str:
    """`func.now()` (the models' `onupdate`) as NOW(6): MariaDB's NOW() drops the microseconds PostgreSQL keeps."""
    return "NOW(6)"
