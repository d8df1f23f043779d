"""The `devdir` command run as a process: its path, a clean environment for it, a free port, waiting until ready,
and the processes it starts (granian's main process and workers), which the tests follow past its end."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

DEVDIR = str(Path(sys.executable).parent / "devdir")


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "LITESTAR_APP", "SECRET_KEY"}}
    return env | extra


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen[bytes], grace_seconds: float) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within `grace_seconds`."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_ready(base: str, process: subprocess.Popen[bytes], deadline_seconds: float = 60) -> httpx.Response:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode()[-3000:] if process.stdout else "(output not kept)"
            pytest.fail(f"devdir exited with {process.returncode}: {output}")
        try:
            response = httpx.get(f"{base}/ready", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("devdir did not become ready")


def run_until_ready(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`devdir run` on a free port with this environment, once it answers /ready; its output is dropped."""
    port = free_port()
    process = subprocess.Popen(
        [DEVDIR, "run", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    wait_ready(f"http://127.0.0.1:{port}", process)
    return process


def wait_until(condition: Callable[[], bool], deadline_seconds: float, what: str) -> None:
    deadline = time.monotonic() + deadline_seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {deadline_seconds} s: {what}")
        time.sleep(0.2)


def descends(child: int, ancestor: int) -> bool:
    """Whether process `child` was started, directly or not, by `ancestor`."""
    while child > 1:
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            return False
        child = int(stat.rsplit(")", 1)[1].split()[1])
        if child == ancestor:
            return True
    return False


def descendants(ancestor: int) -> list[int]:
    """The processes `ancestor` started, directly or not, that are running now."""
    pids = (int(path.name) for path in Path("/proc").iterdir() if path.name.isdigit())
    return [pid for pid in pids if descends(pid, ancestor) and running(pid)]


def command_line(pid: int) -> str:
    """The command line of process `pid` (as its process title shows it); empty once it has ended."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Whether process `pid` exists and has not ended (a zombie, ended but not yet reaped, has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in {"Z", "X"}


@contextlib.contextmanager
def killed_at_the_end(pids: Callable[[], list[int]]) -> Iterator[None]:
    """Whatever of `pids()` still runs when the block ends is killed (SIGKILL): a test that fails must not leave
    servers behind."""
    try:
        yield
    finally:
        for pid in pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def postmaster_pid(pgdata: Path) -> int | None:
    """The PID of the PostgreSQL server running on `pgdata`, from its postmaster.pid; None if it is not running."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return pid if running(pid) else None


def conf_value(value: str | int) -> str:
    """A value as a postgresql.conf line takes it: an integer as it is, anything else quoted."""
    return str(value) if isinstance(value, int) else f"'{value}'"
