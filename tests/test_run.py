"""`devdir run` as the server process it is, over real sockets: clients that never finish their headers, a port
another server already listens on, and `devdir` killed outright (SIGKILL) with its workers and its embedded
PostgreSQL behind it."""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.client import TEST_SECRET
from tests.database import fresh_database
from tests.deploy.image import production_command
from tests.postgresql_only import EMBEDDED
from tests.processes import (
    DEVDIR,
    descendants,
    environment,
    free_port,
    killed_at_the_end,
    postmaster_pid,
    run_until_ready,
    running,
    wait_ready,
    wait_until,
)
from tests.slow_headers import PARTIAL_REQUEST, SlowHeaders, allow_open_files, health_seconds, seconds_until_closed

pytestmark = pytest.mark.slow  # starts processes

SLOW_CLIENTS = 1100  # more than the 1,024 connections a granian worker took at once by default
HEALTH_WITHIN_SECONDS = 10.0
HEADERS_CLOSED_WITHIN_SECONDS = 25.0  # granian's default header timeout was 30 s, and none at all in `auto` mode


Served = tuple[int, subprocess.Popen[bytes]]


@pytest.fixture
def served(request: pytest.FixtureRequest, pg_server: str, tmp_path: Path) -> Iterator[Served]:
    """`devdir run` on a fresh database and a free port, as a developer runs it or with the image's command and
    environment (the Containerfile's); its port and process."""
    allow_open_files(2 * SLOW_CLIENTS + 256)  # this process's connections, and the server's (it inherits it)
    port = free_port()
    if getattr(request, "param", "devdir run") == "image":
        argv, env = production_command(port)
    else:
        argv, env = [DEVDIR, "run", "--port", str(port)], environment()
    with fresh_database(pg_server) as url:
        env |= {"DATABASE_URL": url, "SECRET_KEY": TEST_SECRET, "DATA_DIR": str(tmp_path)}
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        started: list[int] = []
        with killed_at_the_end(lambda: [pid for pid in started if running(pid)]):
            wait_ready(f"http://127.0.0.1:{port}", process)
            started = descendants(process.pid)
            yield port, process
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)


@pytest.mark.parametrize("served", ["devdir run", "image"], indirect=True)
async def test_health_answers_while_slow_header_clients_hold_connections(served: Served) -> None:
    port, _ = served
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < SLOW_CLIENTS + 256:
        pytest.skip(f"this host's open-files limit is below the {SLOW_CLIENTS} connections (ulimit -Hn)")
    slow = SlowHeaders("127.0.0.1", port, SLOW_CLIENTS)
    async with slow.running():
        await slow.until_open(60)
        assert slow.all_open.is_set(), f"only {slow.open} of {SLOW_CLIENTS} slow-header connections opened"
        waits = [await health_seconds(f"http://127.0.0.1:{port}", HEALTH_WITHIN_SECONDS) for _ in range(3)]
    assert None not in waits, f"/health not answered within {HEALTH_WITHIN_SECONDS} s: {waits}"


@pytest.mark.parametrize("served", ["devdir run", "image"], indirect=True)
async def test_a_connection_that_never_ends_its_headers_is_closed(served: Served) -> None:
    """One connection sends nothing at all, one the start of a request and then a byte every second."""
    port, _ = served
    closed = await asyncio.gather(
        seconds_until_closed("127.0.0.1", port, b"", HEADERS_CLOSED_WITHIN_SECONDS),
        seconds_until_closed("127.0.0.1", port, PARTIAL_REQUEST, HEADERS_CLOSED_WITHIN_SECONDS),
    )
    assert None not in closed, f"still open after {HEADERS_CLOSED_WITHIN_SECONDS} s (silent, trickling): {closed}"


def test_run_refuses_a_port_another_server_listens_on(served: Served) -> None:
    port, first = served
    second = subprocess.Popen(
        [DEVDIR, "run", "--port", str(port)],
        env=environment(DATABASE_URL="postgresql://postgres@127.0.0.1:1/other", SECRET_KEY=TEST_SECRET[::-1]),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    started = descendants(second.pid)
    with killed_at_the_end(lambda: started + descendants(second.pid)):
        try:
            output = second.communicate(timeout=60)[0].decode()
        except subprocess.TimeoutExpired:
            started = descendants(second.pid)
            second.kill()
            pytest.fail(f"a second `devdir run` served on busy port {port}")
    assert second.returncode != 0
    assert output == f"devdir: cannot serve on 127.0.0.1:{port}: the port is in use by another server\n"
    assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=10).status_code == 200  # the first one serves on
    assert first.poll() is None


def test_killed_devdir_leaves_no_process_serving(served: Served) -> None:
    port, devdir = served
    started = descendants(devdir.pid)  # granian's main process and its worker
    assert len(started) >= 2, started
    devdir.kill()
    devdir.wait()
    wait_until(lambda: not any(map(running, started)), 30, f"the processes devdir started ({started}) ended")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)


@EMBEDDED
def test_a_run_after_a_killed_one_stops_the_embedded_postgresql(tmp_path: Path) -> None:
    """`devdir run` killed with SIGKILL leaves its PID in the list of the embedded PostgreSQL's users (and the
    server running: nobody stopped it); the next `devdir run` that exits cleanly stops it all the same."""
    pgdata = tmp_path / "data" / "postgres"
    env = environment(DATA_DIR=str(tmp_path / "data"))
    left: list[int] = []
    with killed_at_the_end(lambda: [pid for pid in [*left, postmaster_pid(pgdata)] if pid and running(pid)]):
        killed = run_until_ready(env)
        left = descendants(killed.pid)
        killed.kill()
        killed.wait()
        assert killed.pid in json.loads((pgdata / ".handle_pids.json").read_text())
        assert postmaster_pid(pgdata) is not None

        clean = run_until_ready(env)
        clean.send_signal(signal.SIGTERM)
        assert clean.wait(timeout=60) == 0
        wait_until(lambda: postmaster_pid(pgdata) is None, 30, "the next clean exit stopped the embedded PostgreSQL")
