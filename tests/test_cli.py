"""`devdir`, run as a user runs it: zero-setup serving on the embedded PostgreSQL, the migration command, help, and
what it says when something goes wrong (a missing key, a database it cannot reach, Ctrl-C while it starts)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from service.core.database_urls import backend_of
from service.system.health import migration_head
from tests.client import TEST_SECRET
from tests.database import fetchval, fresh_database, password_server
from tests.postgresql_only import EMBEDDED, PG_REFUSALS
from tests.processes import (
    DEVDIR,
    command_line,
    descendants,
    environment,
    free_port,
    killed_at_the_end,
    postmaster_pid,
    run_until_ready,
    wait_ready,
    wait_until,
)

pytestmark = pytest.mark.slow  # starts processes


def first_admin_password(process: subprocess.Popen[bytes]) -> str:
    """The password `devdir run` prints once for admin@localhost on the development database's first start."""
    assert process.stdout is not None
    for line in iter(process.stdout.readline, b""):
        if b"created admin@localhost with password" in line:
            return line.decode().split("password ", 1)[1].split()[0]
    pytest.fail("devdir printed no admin password")


@EMBEDDED
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


# Whether the database has Alembic's version table (in its current schema on PostgreSQL, in itself on MariaDB).
VERSION_TABLE_EXISTS = {
    "postgresql": "SELECT to_regclass('alembic_versions') IS NOT NULL",
    "mariadb": "SELECT count(*) FROM information_schema.tables "
    "WHERE table_schema = DATABASE() AND table_name = 'alembic_versions'",
}


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
        assert not asyncio.run(fetchval(url, VERSION_TABLE_EXISTS[backend_of(url)]))

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


def test_help_starts_no_database_and_writes_nothing(tmp_path: Path) -> None:
    """On a fresh checkout (no DATABASE_URL, DATA_DIR by default under the working directory), and with a
    DATABASE_URL but no SECRET_KEY, help is printed, and the working directory stays empty."""
    fresh = environment()
    fresh.pop("DATA_DIR", None)
    without_key = environment(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/devdir")
    cases = [
        (fresh, ["--help"]),
        (fresh, []),  # the same help, with click's status for a missing command (2)
        (fresh, ["database", "upgrade", "--help"]),
        (without_key, ["--help"]),
        (without_key, ["users", "create", "-h"]),
    ]
    for env, argv in cases:
        result = subprocess.run(
            [DEVDIR, *argv], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == (0 if argv else 2), (argv, result.stdout, result.stderr)
        assert "Usage: devdir" in result.stdout, (argv, result.stdout)
        assert result.stderr == "", (argv, result.stderr)
        assert list(tmp_path.iterdir()) == [], argv  # no .data/, no key, no PostgreSQL
        if argv == ["--help"]:
            for command in ("run", "database", "users", "workers"):  # with the app's CLI plugins' commands
                assert f" {command} " in result.stdout, result.stdout


def upgrade(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DEVDIR, "database", "upgrade", "--no-prompt"],
        env=environment(DATABASE_URL=url, SECRET_KEY=TEST_SECRET),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@PG_REFUSALS
def test_database_upgrade_says_in_one_line_why_it_cannot_connect(pg_server: str) -> None:
    port = free_port()  # nothing listens there
    down = upgrade(f"postgresql://postgres@127.0.0.1:{port}/devdir")
    assert down.returncode != 0
    assert down.stderr == f"devdir: cannot connect to the database at 127.0.0.1:{port}: connection refused\n"

    with password_server("the-right-one") as url:
        socket_dir = make_url(url).query["host"]
        wrong = upgrade(make_url(url).set(password="a-wrong-one").render_as_string(hide_password=False))
    assert wrong.returncode != 0
    assert wrong.stderr == (
        f"devdir: the database at {socket_dir}:5432 refused the connection: "
        'password authentication failed for user "postgres"\n'
    )

    missing = upgrade(make_url(pg_server).set(database="devdir_no_such_database").render_as_string(False))
    assert missing.returncode != 0
    assert missing.stderr.count("\n") == 1, missing.stderr
    assert 'refused the connection: database "devdir_no_such_database" does not exist' in missing.stderr


STARTING = (b"devdir: embedded PostgreSQL in ", b"devdir: created admin@localhost with password ")


@pytest.mark.parametrize("moment", ["initdb", "migration", "granian"])
@EMBEDDED
def test_ctrl_c_during_start_up_exits_quietly(tmp_path: Path, moment: str) -> None:
    """Ctrl-C as a terminal sends it, to the whole foreground process group: while the embedded PostgreSQL is
    being created (initdb), while the schema is brought to the head, or as granian's main process starts (it
    imports for a second or two before it handles signals). Nothing is printed but what `devdir` prints as it
    starts, and one line at most; the status is 130 (or 143: granian's process ended by the SIGTERM it was
    passed); a PostgreSQL `devdir` had started is stopped."""
    pgdata = tmp_path / "data" / "postgres"
    process = subprocess.Popen(
        [DEVDIR, "run", "--port", str(free_port())],
        env=environment(DATA_DIR=str(tmp_path / "data")),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a process group of its own, as a shell gives a foreground job
    )
    assert process.stdout is not None
    with killed_at_the_end(lambda: [pid for pid in [postmaster_pid(pgdata)] if pid]):
        if moment == "initdb":
            wait_until(pgdata.exists, 60, "devdir created its PostgreSQL data directory")
        elif moment == "migration":
            assert process.stdout.readline().startswith(STARTING[0])
        else:
            granian = lambda: any("granian" in command_line(pid) for pid in descendants(process.pid))  # noqa: E731
            wait_until(granian, 120, "devdir started granian's main process")
        os.killpg(process.pid, signal.SIGINT)
        try:
            output = process.communicate(timeout=60)[0]
        finally:
            if process.poll() is None:
                process.kill()
        said = [line for line in output.splitlines() if not line.startswith(STARTING)]
        assert b"Traceback" not in output
        if moment == "granian":  # litestar-granian's "Granian workers stopped." at most
            assert len(said) <= 1, output.decode()
            assert process.returncode in (130, 143), output.decode()
        else:
            assert said == [], output.decode()
            assert process.returncode == 130, output.decode()
        if moment != "initdb":
            wait_until(lambda: postmaster_pid(pgdata) is None, 30, "the embedded PostgreSQL stopped")
        else:  # and the next start makes its PostgreSQL anew: nothing half-made is left to trip over
            next_run = run_until_ready(environment(DATA_DIR=str(tmp_path / "data")))
            next_run.send_signal(signal.SIGTERM)
            assert next_run.wait(timeout=60) == 0
