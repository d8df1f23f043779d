"""`devdir workers run` as processes: start one on the test database, wait for its /ready, read its log of jobs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.client import TEST_SECRET
from tests.polling import until
from tests.processes import DEVDIR, environment, free_port

_JOB = re.compile(r"import job (?P<job>\d+) (?P<what>\w+) by worker (?P<worker>\S+)")


@dataclass
class WorkerProcess:
    process: asyncio.subprocess.Process
    log: Path
    port: int
    ended: str | None = None  # the whole log, once the process has ended

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.ended if self.ended is not None else self.log.read_text(errors="replace")

    def jobs(self) -> list[tuple[int, str, str, float]]:
        """(job id, what happened: started/succeeded/failed/cancelled/skipped/requeued, worker, time) per line."""
        found = []
        for line in self.lines():
            if line["logger"] == "service.imports" and (match := _JOB.match(line["message"])):
                at = datetime.fromisoformat(line["time"]).timestamp()
                found.append((int(match["job"]), match["what"], match["worker"], at))
        return found

    async def logged(self, job_id: int, what: str, within: float = 15.0) -> None:
        """Wait until this worker's log says `what` of the job: a line reaches the log up to a second after it is
        written (service.observability.log_writer)."""
        await until(
            lambda: any(job == job_id and said == what for job, said, _, _ in self.jobs()),
            lambda: f"worker {self.pid} to log job {job_id} {what}: {self.text()[-3000:]}",
            within,
            every=0.1,
        )

    def lines(self) -> list[dict[str, Any]]:
        """The log's JSON lines (LOG_FORMAT=json): every line but the one the CLI prints as it starts."""
        return [json.loads(line) for line in self.text().splitlines() if line.startswith("{")]

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM, and wait for the process to end (it gives a running job WORKER_SHUTDOWN_SECONDS)."""
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            await self.process.wait()


@contextlib.asynccontextmanager
async def worker_process(database_url: str, **env: str) -> AsyncIterator[WorkerProcess]:
    """A worker process with a 1 s heartbeat (and `env`), ready when yielded; stopped (SIGTERM) afterwards."""
    port = free_port()
    settings = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "WORKER_HEALTH_PORT": str(port),
        "WORKER_HEARTBEAT_SECONDS": "1",
        "WORKER_SHUTDOWN_SECONDS": "2",
        "LOG_FORMAT": "json",
    } | env
    with tempfile.NamedTemporaryFile(prefix="devdir-worker-", suffix=".log", delete=False) as log:
        process = await asyncio.create_subprocess_exec(
            DEVDIR, "workers", "run", env=environment(**settings), stdout=log, stderr=subprocess.STDOUT
        )
    worker = WorkerProcess(process, Path(log.name), port)
    try:
        await _ready(worker)
        yield worker
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        worker.ended = worker.text()
        worker.log.unlink(missing_ok=True)
        print(worker.ended[-4000:])


async def _ready(worker: WorkerProcess, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if worker.process.returncode is not None:
                raise AssertionError(f"the worker exited with {worker.process.returncode}: {worker.text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"http://127.0.0.1:{worker.port}/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"the worker was not ready in time: {worker.text()[-3000:]}")


async def health(worker: WorkerProcess, path: str) -> int:
    async with httpx.AsyncClient(timeout=2) as client:
        return (await client.get(f"http://127.0.0.1:{worker.port}{path}")).status_code
