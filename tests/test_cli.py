"""`devdir`, run as a user runs it: zero-setup serving on the embedded PostgreSQL, and the migration command."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from service.system.health import migration_head
from tests.client import TEST_SECRET
from tests.database import fetchval, fresh_database
from tests.processes import DEVDIR, environment, free_port, wait_ready

pytestmark = pytest.mark.slow  # starts processes


def first_admin_password(process: subprocess.Popen[bytes]) -> str:
    """The password `devdir run` prints once for admin@localhost on the development database's first start."""
    assert process.stdout is not None
    for line in iter(process.stdout.readline, b""):
        if b"created admin@localhost with password" in line:
            return line.decode().split("password ", 1)[1].split()[0]
    pytest.fail("devdir printed no admin password")


def test_devdir_run_serves_on_embedded_postgres_with_no_setup(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [DEVDIR, "run", "--port", str(port)],
        env=environment(DATA_DIR=str(tmp_path / "data")),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        password = first_admin_password(process)
        ready = wait_ready(base, process)
        assert ready.json()["revision"] == migration_head()  # migrations were applied on start
        # The printed admin signs in, and its token writes and reads.
        form = {"username": "admin@localhost", "password": password}
        signed_in = httpx.post(f"{base}/api/access/token", data=form, timeout=10)
        assert signed_in.status_code == 200, signed_in.text
        auth = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        ada = {"name": "Ada", "email": "ada@x.io", "specialty": "math"}
        assert httpx.post(f"{base}/api/developers", json=ada, headers=auth, timeout=5).status_code == 201
        listed = httpx.get(f"{base}/api/developers?specialty=math", headers=auth, timeout=5)
        assert listed.json()["items"][0]["name"] == "Ada"
        assert httpx.get(f"{base}/api/developers", timeout=5).status_code == 401
        assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()
        assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0  # the signing key is private
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists(), "embedded PostgreSQL was stopped"


def test_devdir_database_upgrade_migrates_a_real_database(pg_server: str) -> None:
    def upgrade(**secret: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DEVDIR, "database", "upgrade", "--no-prompt"],
            env=environment(DATABASE_URL=url, **secret),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    with fresh_database(pg_server, migrate=False) as url:
        # Every command loads the app, and the app is built only from complete settings.
        refused = upgrade()
        assert refused.returncode != 0
        assert "devdir: SECRET_KEY must be set to 32 characters or more" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert asyncio.run(fetchval(url, "SELECT to_regclass('alembic_versions') IS NULL"))

        result = upgrade(SECRET_KEY=TEST_SECRET)
        assert result.returncode == 0, result.stdout + result.stderr

        assert asyncio.run(fetchval(url, "SELECT version_num FROM alembic_versions")) == migration_head()


def test_devdir_run_refuses_to_serve_without_a_secret_key(pg_server: str) -> None:
    for secret in ({}, {"SECRET_KEY": "too short"}):
        result = subprocess.run(
            [DEVDIR, "run", "--port", str(free_port())],
            env=environment(DATABASE_URL=pg_server, **secret),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        assert "devdir: SECRET_KEY must be set to 32 characters or more" in result.stderr
        assert "Traceback" not in result.stderr
