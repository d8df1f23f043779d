"""Benchmark servers: a command serving HTTP as a child process, up until the block ends; its processes' memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from tests.processes import descends, free_port

BIN = Path(sys.executable).parent


@contextmanager
def serving(
    command: list[str], env: dict[str, str], port: int, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` serving on `port` until the block ends; its output to `log`, or nowhere."""
    with log.open("wb") if log else open(os.devnull, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    raise SystemExit(f"{command} exited with {process.returncode}") from None
                time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def granian_apps(stack: ExitStack, envs: Mapping[str, dict[str, str]]) -> tuple[dict[str, str], dict[str, int]]:
    """A new granian process (one worker, the app's factory) per entry of `envs`, each with that environment, until
    `stack` closes: each one's URL and its worker's pid, by the entry's name."""
    urls, workers = {}, {}
    for name, env in envs.items():
        port = free_port()
        command = [str(BIN / "granian"), "--interface", "asgi", "--workers", "1", "--port", str(port)]
        command += ["--factory", "service.app:create_app"]
        workers[name] = worker_pid(stack.enter_context(serving(command, env, port)).pid)
        urls[name] = f"http://127.0.0.1:{port}"
    return urls, workers


def worker_pid(server: int) -> int:
    """The granian worker under `server` (`devdir run` starts granian's main process, which starts the worker
    that runs the app): the descendant whose command line ends in `worker-<n>`."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode().split()
        except OSError:
            continue
        pid = int(cmdline.parent.name)
        if command and command[-1].startswith("worker-") and descends(pid, server):
            return pid
    raise LookupError(f"no granian worker under process {server}")


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of /proc/<pid>/status in MB: VmRSS (resident now) or VmHWM (the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"{field} not in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the main thread of process `pid` (an event loop's, in a granian worker)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
