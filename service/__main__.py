"""The `devdir` command: Litestar's CLI with this app preset (`run`, `database ...`, `routes`, ...), plus
`users ...` (service.accounts.cli, added by the app's CLI plugin).

Without DATABASE_URL it first starts the embedded PostgreSQL under DATA_DIR, and `devdir run` brings its schema
to the migration head, so a fresh checkout serves with one command.
"""

from __future__ import annotations

import os
import sys

from litestar.cli.main import litestar_group

from service.settings import Settings

APP_PATH = "service.app:create_app"
DEV_DATABASE = "devdir"


def _use_embedded_database(settings: Settings, argv: list[str]) -> None:
    from service.db import embedded

    try:
        server = embedded.start(settings.data_path / "postgres")
    except embedded.EmbeddedPostgresUnavailable as exc:
        sys.exit(f"devdir: {exc}")
    # Exported, so granian's worker processes (which build the app anew) find the same database.
    os.environ["DATABASE_URL"] = embedded.database_url(server, DEV_DATABASE)
    print(f"devdir: embedded PostgreSQL in {server.pgdata}", file=sys.stderr)  # noqa: T201
    if argv[:1] in (["run"], ["users"]):
        _upgrade_schema()


def _upgrade_schema() -> None:
    from advanced_alchemy.alembic.commands import AlembicCommands

    from service.db.config import sqlalchemy_config

    AlembicCommands(sqlalchemy_config=sqlalchemy_config(Settings.from_env())).upgrade("head")


def main() -> None:
    os.environ.setdefault("LITESTAR_APP", APP_PATH)
    settings = Settings.from_env()
    if not settings.database_url:
        _use_embedded_database(settings, sys.argv[1:])
    litestar_group()


if __name__ == "__main__":
    main()
