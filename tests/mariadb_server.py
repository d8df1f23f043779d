"""A MariaDB server of the test's own, in a temporary directory, that a test may kill and start again on the same
port (the shared one on 3306 must never be restarted). Root without a password (--skip-grant-tables), TCP on
127.0.0.1 only; skips (fails under TEST_REQUIRE_PARTS=1) where mariadbd or mariadb-install-db is missing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import mariadb
from tests.processes import free_port


class PrivateServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"mysql://root@127.0.0.1:{self.port}/"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def install(self) -> None:
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.directory / 'data'}",
                "--skip-test-db",
                "--auth-root-authentication-method=normal",
                *(["--user=root"] if os.geteuid() == 0 else []),
            ],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        log = (self.directory / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={self.directory / 'data'}",
                f"--socket={self.directory / 'sock'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
                "--innodb-buffer-pool-size=64M",
                "--skip-log-bin",
                *(["--user=root"] if os.geteuid() == 0 else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(Exception):
                asyncio.run(mariadb.fetch(self.url, "SELECT 1"))
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the private MariaDB did not start: {(self.directory / 'server.log').read_text()[-2000:]}")
            time.sleep(0.05)

    def crash(self) -> None:
        """SIGKILL: no shutdown, InnoDB recovers at the next start."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@contextlib.contextmanager
def private_server(directory: Path) -> Iterator[PrivateServer]:
    missing = [name for name in ("mariadbd", "mariadb-install-db") if shutil.which(name) is None]
    if missing:
        reason = f"cannot start a private MariaDB: {', '.join(missing)} not on PATH"
        if os.environ.get("TEST_REQUIRE_PARTS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    server = PrivateServer(directory)
    server.install()
    try:
        server.start()
        yield server
    finally:
        server.stop()
