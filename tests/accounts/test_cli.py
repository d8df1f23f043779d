"""`devdir users create` / `devdir users list` against a real database, as an operator runs them."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator

import pytest

from service.accounts.passwords import verify_password
from service.app import create_app
from tests.client import TEST_SECRET, serve
from tests.database import fetch, fresh_database
from tests.pgbouncer import app_settings
from tests.processes import DEVDIR, environment

pytestmark = pytest.mark.slow  # starts processes

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def database_url(pg_server: str) -> Iterator[str]:
    with fresh_database(pg_server) as url:
        yield url


def devdir(url: str, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DEVDIR, *args],
        env=environment(DATABASE_URL=url, SECRET_KEY=TEST_SECRET, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def users(url: str) -> dict[str, tuple[str, str]]:
    rows = asyncio.run(fetch(url, "SELECT email, role, password_hash FROM users"))
    return {row["email"]: (row["role"], row["password_hash"]) for row in rows}


def test_create_from_flag_env_or_prompt_stores_only_a_hash(database_url: str) -> None:
    made = [
        devdir(database_url, "users", "create", "--email", "Admin@X.io", "--role", "admin", "--password", PASSWORD),
        devdir(
            database_url, "users", "create", "--email", "ed@x.io", "--role", "editor", DEVDIR_USER_PASSWORD=PASSWORD
        ),
        devdir(database_url, "users", "create", "--email", "vi@x.io", stdin=f"{PASSWORD}\n{PASSWORD}\n"),
    ]
    for result in made:
        assert result.returncode == 0, result.stdout + result.stderr
        assert PASSWORD not in result.stdout + result.stderr
    accounts = users(database_url)
    assert {email: role for email, (role, _) in accounts.items()} == {
        "Admin@X.io": "admin",
        "ed@x.io": "editor",
        "vi@x.io": "viewer",
    }
    for _, password_hash in accounts.values():
        assert password_hash.startswith("$argon2id$")
        assert verify_password(PASSWORD, password_hash)

    listed = devdir(database_url, "users", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split("\t")[1:3] for line in lines] == [
        ["Admin@X.io", "admin"],
        ["ed@x.io", "editor"],
        ["vi@x.io", "viewer"],
    ]
    assert "argon2" not in listed.stdout
    assert PASSWORD not in listed.stdout


async def test_an_account_made_by_the_cli_signs_in(database_url: str) -> None:
    made = devdir(database_url, "users", "create", "--email", "cli@x.io", "--role", "editor", "--password", PASSWORD)
    assert made.returncode == 0, made.stderr
    app = create_app(app_settings(database_url))
    async with serve(app, bearer=None) as client:
        signed_in = await client.post("/api/access/token", data={"username": "cli@x.io", "password": PASSWORD})
        assert signed_in.status_code == 200, signed_in.text
        headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        assert (await client.get("/api/users/me", headers=headers)).json()["role"] == "editor"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--email", "ADMIN@x.io", "--password", PASSWORD), "already exists"),
        (("--email", "new@x.io", "--password", "too short"), "length >= 12"),
        (("--email", "not-an-email", "--password", PASSWORD), "email"),
        (("--email", "new@x.io", "--role", "root", "--password", PASSWORD), "root"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(database_url: str, args: tuple[str, ...], message: str) -> None:
    before = users(database_url)
    result = devdir(database_url, "users", "create", *args)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert users(database_url) == before
