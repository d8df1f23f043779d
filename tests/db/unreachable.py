"""An app whose database is down: the service configured for a PostgreSQL port that refuses at once."""

from __future__ import annotations

from litestar import Litestar

from service.app import create_app
from service.core.settings import Settings
from tests.client import TEST_SECRET


def unreachable_app() -> Litestar:
    # Port 1 on loopback refuses at once: a database that is down.
    return create_app(
        Settings(
            secret_key=TEST_SECRET, database_url="postgresql+asyncpg://devdir@127.0.0.1:1/devdir", db_connect_timeout=2
        )
    )
