"""A real PgBouncer in transaction mode in front of the tests' PostgreSQL (Debian's `pgbouncer`, 1.18 here).

`TEST_DB_POOLER=transaction` runs the whole suite through one (the `settings` fixture, and `app_settings` for the
tests that build their own): DATABASE_URL is the pooler, DATABASE_DIRECT_URL the server itself. Tests that need a
pooler whatever the run (tests/db/test_pooler*.py) start one too. Where `pgbouncer` is not installed they skip,
saying so, except under TEST_REQUIRE_PARTS=1 (CI), where they fail.

PgBouncer refuses to run as root: as root it is started as another user (`-u`), in a directory that user can
write.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from service.core.settings import Settings
from tests.client import TEST_SECRET
from tests.processes import free_port, stop

POOLED_RUN = os.environ.get("TEST_DB_POOLER") == "transaction"


@dataclass(frozen=True)
class PgBouncer:
    port: int
    directory: Path

    def url(self, database_url: str) -> str:
        """`database_url`'s database, through this pooler."""
        direct = make_url(database_url)
        query = {key: value for key, value in direct.query.items() if key != "host"}
        return direct.set(host="127.0.0.1", port=self.port, query=query).render_as_string(hide_password=False)

    @property
    def admin_url(self) -> str:
        """The admin console (SHOW POOLS, SHOW STATS): simple queries only."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/pgbouncer"

    @property
    def log(self) -> str:
        return (self.directory / "pgbouncer.log").read_text(errors="replace")


def binary() -> str:
    """pgbouncer's path; else the test skips (or fails, where every part is required)."""
    found = shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer",) if Path(p).exists()), None)
    if found:
        return found
    reason = "pgbouncer is not installed (apt-get install pgbouncer)"
    if os.environ.get("TEST_REQUIRE_PARTS") == "1":
        pytest.fail(f"TEST_REQUIRE_PARTS=1 and {reason}")
    pytest.skip(reason)


@contextmanager
def running(server_url: str, *, pool_size: int = 20, **parameters: Any) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction mode forwarding every database of `server_url`'s server, for as long as the
    block runs. `parameters` are more lines of its [pgbouncer] section."""
    executable = binary()
    server = make_url(server_url)
    host = server.query.get("host") or server.host or "127.0.0.1"
    port = server.port or 5432
    with tempfile.TemporaryDirectory(prefix="devdir-pgbouncer-") as tmp:
        directory = Path(tmp)
        directory.chmod(0o777)  # written by `nobody` when started as root
        listen = free_port()
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": listen,
            "unix_socket_dir": "",
            "auth_type": "any",  # every database logs in as the server's user below
            "pool_mode": "transaction",
            "default_pool_size": pool_size,
            "max_client_conn": 2000,
            "admin_users": "postgres",
            "logfile": directory / "pgbouncer.log",
            "pidfile": directory / "pgbouncer.pid",
            "log_connections": 0,
            "log_disconnections": 0,
            **parameters,
        }
        config = directory / "pgbouncer.ini"
        config.write_text(
            f"[databases]\n* = host={host} port={port} user={server.username or 'postgres'}\n\n[pgbouncer]\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items())
        )
        command = [executable, *(["-u", _user(host)] if os.geteuid() == 0 else []), str(config)]
        # Its stderr (every log line again) goes to a file: a pipe nobody drains fills at 64 KiB, and PgBouncer then
        # blocks in write(2) for good, answering nothing (as a run with many "server conn crashed?" lines found).
        with (directory / "pgbouncer.stderr").open("wb") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            _wait_for(listen, process, directory)
            yield PgBouncer(listen, directory)
        finally:
            stop(process, 10)


def app_settings(database_url: str, **fields: Any) -> Settings:
    """Settings of an app on `database_url` (a direct URL): through the run's pooler when the run has one."""
    fields.setdefault("secret_key", TEST_SECRET)
    if RUN_POOLER is None:
        return Settings(database_url=database_url, **fields)
    return Settings(
        database_url=RUN_POOLER.url(database_url),
        database_direct_url=database_url,
        db_pooler="transaction",
        **fields,
    )


RUN_POOLER: PgBouncer | None = None  # the run's pooler under TEST_DB_POOLER=transaction (set by tests/conftest.py)


def _user(host: str) -> str:
    """Who PgBouncer runs as, under root: the owner of the server's socket directory (the embedded server runs as
    a user of its own), else `nobody`."""
    if host.startswith("/"):
        return pwd.getpwuid(Path(host).stat().st_uid).pw_name
    return "nobody"


def _wait_for(port: int, process: subprocess.Popen[bytes], directory: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = [directory / name for name in ("pgbouncer.stderr", "pgbouncer.log")]
            output = "".join(path.read_text(errors="replace") for path in said if path.exists())
            raise RuntimeError(f"pgbouncer exited ({process.returncode}): {output}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise RuntimeError("pgbouncer did not listen within 30 s")
