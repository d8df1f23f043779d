"""Database URLs: which server DATABASE_URL names (PostgreSQL or MariaDB/MySQL), and DATABASE_REPLICA_URLS, the
PostgreSQL hot standbys the service watches.

A URL carries a password: neither an error about one nor the name a standby is shown by (logs, /metrics labels)
ever contains it. A standby is named by `host:port/database`, which says which server it is without the user.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qs, urlsplit

# The schemes DATABASE_URL takes: what PostgreSQL's own tools write, and SQLAlchemy's name for asyncpg.
SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")
DEFAULT_PORT = 5432
# MariaDB 10.6+ and MySQL 8, on asyncmy (docs/decisions/0012-mysql-driver.md): plain schemes, or SQLAlchemy's.
MARIADB_SCHEMES = ("mysql", "mariadb", "mysql+asyncmy", "mariadb+asyncmy")

# The two kinds of server the service runs on; each has its implementation of what differs (service.db.dialect).
Backend = Literal["postgresql", "mariadb"]


def backend_of(url: str) -> Backend:
    """Which kind of server `url` names, by its scheme; ValueError for any other scheme (never showing the URL)."""
    scheme = url.partition("://")[0].lower()
    if scheme in SCHEMES:
        return "postgresql"
    if scheme in MARIADB_SCHEMES:
        return "mariadb"
    known = ", ".join(f"{name}://" for name in (*SCHEMES, *MARIADB_SCHEMES))
    raise ValueError(f"its scheme must be one of {known}")


def parse_database_urls(text: str) -> tuple[str, ...]:
    """The comma-separated PostgreSQL URLs in `text` (blanks skipped, repeats once); ValueError names a bad one
    by its `host:port/database` or position, never with its password."""
    urls = tuple(dict.fromkeys(entry.strip() for entry in text.split(",") if entry.strip()))
    names: dict[str, int] = {}
    for position, url in enumerate(urls, 1):
        name = database_name(url, position)
        if name in names:
            raise ValueError(f"entries {names[name]} and {position} both name {name}")
        names[name] = position
    return urls


def database_name(url: str, position: int = 1) -> str:
    """`host:port/database` of a PostgreSQL URL (the socket directory as host for a Unix socket), or ValueError
    saying what is wrong with entry `position`."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"entry {position} is not a URL (a bad port?)") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ValueError(f"entry {position} is not a postgresql:// URL (postgresql://user:password@host:5432/db)")
    host = parts.hostname or next(iter(parse_qs(parts.query).get("host", [])), "")
    database = parts.path.lstrip("/")
    if not host or not database or "/" in database:
        raise ValueError(f"entry {position} must name a host and a database (postgresql://user:password@host:5432/db)")
    return f"{host}:{port}/{database}"
