"""The `devdir` command run as a process: its path, a clean environment for it, a free port, and waiting until ready."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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


def wait_ready(base: str, process: subprocess.Popen[bytes], deadline_seconds: float = 60) -> httpx.Response:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"devdir exited with {process.returncode}: {process.stdout.read().decode()[-3000:]}")  # type: ignore[union-attr]
        try:
            response = httpx.get(f"{base}/ready", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("devdir did not become ready")
