"""A database that cannot be reached, or that refuses the login, said in one line: where (host:port) and why.

The `devdir` commands print this line instead of the traceback that SQLAlchemy, Alembic and asyncpg stack up
(165 lines for a server that is down, 205 for a wrong password), in which the cause is the last line and the
address appears nowhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from service.db.config import async_url
from service.db.errors import driver_error, mysql_code

# What PostgreSQL answers a connection it will not serve: the login (class 28: no such role, wrong password, no
# pg_hba.conf entry), no such database, a server still starting or shutting down, no connection slot left.
REFUSALS = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)
ASYNCPG_DIR = str(Path(asyncpg.__file__).parent)
# MariaDB's: access denied (to the user, to the database), no such database, too many connections, a server
# shutting down; and asyncmy's own for no connection at all (can't connect, unknown host, lost while connecting).
MARIADB_REFUSALS = frozenset({1044, 1045, 1049, 1040, 1053})
MARIADB_UNREACHABLE = frozenset({2003, 2005, 2013})


def unreachable_database(exc: BaseException, url: str) -> str | None:
    """One line for an error that is the database being unreachable or refusing the connection; None otherwise."""
    where = address(url)
    for cause in _causes(exc):
        if isinstance(cause, REFUSALS) or mysql_code(cause) in MARIADB_REFUSALS:
            return f"the database at {where} refused the connection: {_words(cause)}"
        if mysql_code(cause) in MARIADB_UNREACHABLE:
            return f"cannot connect to the database at {where}: {_words(cause)}"
        if isinstance(cause, OSError) and _raised_in_asyncpg(cause):
            return f"cannot connect to the database at {where}: {_reason(cause)}"
    return None


def address(url: str) -> str:
    """host:port of a database URL (the socket directory as host for a Unix socket; the server's default port)."""
    parsed = make_url(async_url(url))
    host = parsed.host or parsed.query.get("host") or "localhost"
    default = 3306 if parsed.get_backend_name() == "mysql" else 5432
    return f"{host if isinstance(host, str) else ','.join(host)}:{parsed.port or default}"


def _words(cause: BaseException) -> str:
    """The server's or driver's message: asyncmy's errors are (code, message), asyncpg's are their message."""
    args = driver_error(cause).args
    return str(args[1]) if mysql_code(cause) is not None and len(args) > 1 else str(cause)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what caused it, deeper and deeper (SQLAlchemy keeps the driver's error as `orig`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__ or current.__context__


def _raised_in_asyncpg(exc: BaseException) -> bool:
    """Whether the driver raised it (connecting, or on a connection it held): not some other OSError."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith(ASYNCPG_DIR):
            return True
        tb = tb.tb_next
    return False


def _reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time (DB_CONNECT_TIMEOUT)"
    if exc.errno is not None and exc.errno > 0:  # asyncio's text for it is "Connect call failed (address)"
        return os.strerror(exc.errno).lower()
    return exc.strerror or str(exc)  # a name that does not resolve: the resolver's own words
