"""The `devdir` command: Litestar's CLI with this app preset (`run`, `database ...`, `routes`, ...), plus
`users ...` (service.accounts.cli) and `workers run` (service.imports.cli), added by the app's CLI
plugins.

Without DATABASE_URL it first starts the embedded PostgreSQL under DATA_DIR, and `devdir run` brings its schema
to the migration head, so a fresh checkout serves with one command; that `run` also runs an import worker inside
its own process (WORKER_IN_PROCESS), so background imports work without a second command.

`devdir`, `devdir --help` and `devdir <command> --help` only print: the commands are listed from an app built
from default settings (`help_app`), so help needs no database and no key, and starts and writes nothing.
`devdir run` serves with granian's limits against slow clients and refuses a busy port (service.system.serving),
and the workers it starts stop if it is killed (service.system.orphans).

What usually goes wrong is said in one line, without a traceback: a setting, a busy port, a database that cannot
be reached or refuses the login (service.db.unreachable). Ctrl-C before granian serves (granian then stops on
it by itself) ends `devdir` at once with status 130, silently, whatever it was doing.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when used, after the Ctrl-C handler is in place: they take a second or more
    from litestar import Litestar

    from service.core.settings import Settings

APP_PATH = "service.app:create_app"
HELP_APP_PATH = "service.__main__:help_app"
HELP_OPTIONS = {"--help", "-h"}
DEV_DATABASE = "devdir"
DEV_ADMIN = "admin@localhost"
INTERRUPTED = 128 + signal.SIGINT


def main() -> None:
    interrupt = _Interrupt()
    signal.signal(signal.SIGINT, interrupt.exit)
    sys.unraisablehook = interrupt.unless_swallowed
    try:
        _main(sys.argv[1:])
    finally:
        interrupt.over = True


def _main(argv: list[str]) -> None:
    if _asks_for_help(argv):
        os.environ["LITESTAR_APP"] = HELP_APP_PATH
        _cli()
        return
    os.environ.setdefault("LITESTAR_APP", APP_PATH)
    from service.core.settings import SettingsError
    from service.system.serving import PortInUse

    try:
        _prepare(argv)
        _cli()
    except (SettingsError, PortInUse) as exc:  # a setting is wrong, or the port is taken: say which
        sys.exit(f"devdir: {exc}")
    except Exception as exc:
        if (line := _unreachable_database(exc)) is None:
            raise
        sys.exit(f"devdir: {line}")


class _Interrupt:
    """Ctrl-C before granian serves (then litestar-granian passes it on): SystemExit(130) wherever the main thread
    is, which unwinds like KeyboardInterrupt (atexit handlers run: the embedded PostgreSQL is stopped) but prints
    nothing. Raised inside a finalizer (an asyncio transport's `__del__`, a weakref callback), an exception is
    only handed to the unraisable hook and start-up goes on; so the hook sends the signal again, 50 ms later, to
    land outside it. Once `main` is over, atexit handlers run uninterrupted."""

    def __init__(self) -> None:
        self.raised = False
        self.in_hook = False
        self.over = False

    def exit(self, signum: int, frame: FrameType | None) -> None:
        if self.over:
            return
        if self.in_hook:
            self._again()
            return
        self.raised = True
        raise SystemExit(INTERRUPTED)

    def unless_swallowed(self, unraisable: sys.UnraisableHookArgs) -> None:
        if not (self.raised and unraisable.exc_type is SystemExit):
            sys.__unraisablehook__(unraisable)
            return
        self.in_hook = True
        try:
            self._again()
        finally:
            self.in_hook = False

    def _again(self) -> None:
        again = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
        again.daemon = True
        again.start()


def _asks_for_help(argv: list[str]) -> bool:
    """`devdir` alone, or --help / -h anywhere before a `--`: click only prints help then."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    return not argv or bool(HELP_OPTIONS.intersection(options))


def help_app() -> Litestar:
    """The app whose CLI plugins `--help` lists: built from default settings, never from the environment's (which
    may lack a key, or name the embedded database), and never served; its URL and key are never used."""
    from service.app import create_app
    from service.core.settings import SECRET_KEY_MIN, Settings

    return create_app(Settings(database_url="postgresql+asyncpg://localhost/devdir", secret_key="?" * SECRET_KEY_MIN))


def _cli() -> None:
    from litestar.cli.main import litestar_group

    litestar_group()


def _prepare(argv: list[str]) -> None:
    from service.core.settings import Settings
    from service.system.orphans import announce_devdir
    from service.system.serving import configure_server

    settings = Settings.from_env()
    if argv[:1] == ["run"]:
        configure_server(os.environ)
        announce_devdir()
    if not settings.database_url:
        _use_embedded_database(settings, argv)


def _unreachable_database(exc: Exception) -> str | None:
    """The one line for a database that cannot be reached or refuses the login; None for any other error."""
    from service.db.unreachable import unreachable_database

    url = os.environ.get("DATABASE_URL")
    return unreachable_database(exc, url) if url else None


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

    from service.core.settings import Settings
    from service.db.config import sqlalchemy_config

    AlembicCommands(sqlalchemy_config=sqlalchemy_config(Settings.from_env())).upgrade("head")


if __name__ == "__main__":
    main()
