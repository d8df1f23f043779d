"""The `devdir` command: Litestar's CLI with this app preset (`run`, `database ...`, `routes`, ...), plus
`users ...` (service.accounts.cli) and `workers run` (service.imports.cli), added by the app's CLI
plugins.

Without DATABASE_URL it first starts the embedded PostgreSQL under DATA_DIR, and `devdir run` brings its schema
to the migration head, so a fresh checkout serves with one command; that `run` also runs an import worker inside
its own process (WORKER_IN_PROCESS), so background imports work without a second command.

`devdir run` serves with granian's limits against slow clients and refuses a busy port (service.system.serving),
and the workers it starts stop if it is killed (service.system.orphans).
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from litestar.cli.main import litestar_group

from service.settings import Settings, SettingsError
from service.system.orphans import announce_devdir
from service.system.serving import PortInUse, configure_server

APP_PATH = "service.app:create_app"
DEV_DATABASE = "devdir"
DEV_ADMIN = "admin@localhost"


def _use_embedded_database(settings: Settings, argv: list[str]) -> None:
    from service.db import embedded

    try:
        server = embedded.start(settings.data_path / "postgres")
    except embedded.EmbeddedPostgresUnavailable as exc:
        sys.exit(f"devdir: {exc}")
    # Exported, so granian's worker processes (which build the app anew) find the same database.
    os.environ["DATABASE_URL"] = embedded.database_url(server, DEV_DATABASE)
    print(f"devdir: embedded PostgreSQL in {server.pgdata}", file=sys.stderr)  # noqa: T201
    if not settings.secret_key:
        os.environ["SECRET_KEY"] = _development_secret(settings.data_path / "secret_key")
    if argv[:1] in (["run"], ["users"], ["workers"]):
        _upgrade_schema()
    if argv[:1] == ["run"]:
        os.environ.setdefault("WORKER_IN_PROCESS", "true")
        os.environ.setdefault("LOG_FORMAT", "console")
    if argv[:1] == ["run"] and not settings.devdir_admin_email:
        _development_admin()


def _development_secret(path: Path) -> str:
    """A random signing key kept under DATA_DIR, so restarts keep tokens valid (development only)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _development_admin() -> None:
    """On the development database's first start, admin@localhost with a random password, printed once."""
    import asyncio

    from service.accounts.cli import create_first_admin

    password = secrets.token_urlsafe(18)
    if asyncio.run(create_first_admin(DEV_ADMIN, password)):
        print(f"devdir: created {DEV_ADMIN} with password {password} (shown once)", file=sys.stderr)  # noqa: T201


def _upgrade_schema() -> None:
    from advanced_alchemy.alembic.commands import AlembicCommands

    from service.db.config import sqlalchemy_config

    AlembicCommands(sqlalchemy_config=sqlalchemy_config(Settings.from_env())).upgrade("head")


def main() -> None:
    os.environ.setdefault("LITESTAR_APP", APP_PATH)
    try:
        settings = Settings.from_env()
        if sys.argv[1:2] == ["run"]:
            configure_server(os.environ)
            announce_devdir()
        if not settings.database_url:
            _use_embedded_database(settings, sys.argv[1:])
        litestar_group()
    except (SettingsError, PortInUse) as exc:  # a setting is wrong, or the port is taken: say which
        sys.exit(f"devdir: {exc}")


if __name__ == "__main__":
    main()
