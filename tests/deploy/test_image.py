"""The image, checked without a container engine: its Containerfile lints clean, and its exact command serves
in production mode (a real PostgreSQL, no development defaults), then stops on SIGTERM without failing a request.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.client import TEST_SECRET, token
from tests.database import fresh_database
from tests.deploy.image import BIN, CONTAINERFILE, command, environment, production_command
from tests.processes import free_port, wait_ready

pytestmark = pytest.mark.slow  # starts processes


def test_containerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(CONTAINERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""  # no warning either


def test_image_runs_as_non_root_with_tini_and_exposes_8000() -> None:
    text = CONTAINERFILE.read_text()
    assert "USER 65532:65532" in text
    assert "EXPOSE 8000" in text
    assert command()[:2] == ["tini", "--"]
    assert environment()["GRANIAN_WORKERS"] == "1"


def test_production_start_migrate_serve_and_stop_without_a_failed_request(pg_server: str, tmp_path: Path) -> None:
    with fresh_database(pg_server, migrate=False) as url:
        argv, env = production_command(free_port())
        env |= {"DATABASE_URL": url, "SECRET_KEY": TEST_SECRET, "DATA_DIR": str(tmp_path)}
        migrate = subprocess.run(
            ["devdir", "database", "upgrade", "--no-prompt"], env=env, capture_output=True, text=True, check=False
        )
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr

        # The output goes to a file, as a container runtime takes it: a pipe read only at the end would fill with
        # the request log's lines and hold the server's writes.
        log = tmp_path / "server.log"
        with log.open("wb") as sink:
            server = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
            base = f"http://127.0.0.1:{env['GRANIAN_PORT']}"
            try:
                assert wait_ready(base, server).json()["status"] == "ready"
                outcomes = stream_requests_across_sigterm(base, server)
            finally:
                if server.poll() is None:
                    server.kill()
                server.wait(timeout=30)
        output = log.read_text()
        print(f"requests across SIGTERM: {dict(outcomes)}; exit code {server.returncode}")  # evidence, with -s
        assert server.returncode == 0, output[-3000:]
        assert outcomes["ok"] > 50, outcomes  # requests really flowed before and during the shutdown
        assert not [outcome for outcome in outcomes if outcome.startswith("failed")], outcomes
        assert outcomes["refused"] > 0, outcomes  # and the server did stop listening


def stream_requests_across_sigterm(base: str, server: subprocess.Popen[bytes]) -> Counter[str]:
    """Eight clients read as fast as they can, a new connection per request; SIGTERM goes out a second in.

    Outcomes: `ok` (answered 200); `refused` (connection refused: the server had stopped listening);
    `unserved` (closed or reset before any response, after SIGTERM: a connection that sat in the kernel's
    accept queue when the listener closed, which the kernel resets; in Kubernetes the preStop sleep keeps new
    connections away from a terminating pod, so none arrive then); `failed` (anything else: an error status,
    or a request cut off once answered or before SIGTERM).
    """
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    stopping = threading.Event()
    headers = {"Authorization": f"Bearer {token('viewer')}", "Connection": "close"}

    def client() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            while True:
                try:
                    status = http.get("/api/developers?limit=5").status_code
                    outcome = "ok" if status == 200 else f"failed ({status})"
                except httpx.ConnectError:
                    outcome = "refused"
                except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                    # Closed or reset before a single byte of answer, after SIGTERM: never accepted by the app.
                    unserved = stopping.is_set() and ("without sending a response" in str(exc) or "reset" in str(exc))
                    outcome = "unserved" if unserved else f"failed ({type(exc).__name__}: {exc})"
                except httpx.TransportError as exc:
                    outcome = f"failed ({type(exc).__name__}: {exc})"
                with lock:
                    outcomes[outcome] += 1
                if outcome == "refused":
                    return

    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    time.sleep(1)
    stopping.set()
    server.send_signal(signal.SIGTERM)
    for thread in clients:
        thread.join(timeout=60)
    server.wait(timeout=30)  # within GRANIAN_WORKERS_KILL_TIMEOUT and Kubernetes' grace period
    return outcomes


@pytest.fixture(autouse=True)
def _no_host_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "SECRET_KEY", "LITESTAR_APP"):
        monkeypatch.delenv(name, raising=False)
