"""Account management (admin only), the first admin, and passwords that never show in answers or logs."""

from __future__ import annotations

import logging

import httpx
import pytest
from litestar import Litestar

from service.app import create_app
from service.core.settings import SettingsError
from tests.accounts.api import PASSWORD, account, sign_in
from tests.client import assert_problem, serve
from tests.database import empty, fetch
from tests.pgbouncer import app_settings


async def test_admin_manages_accounts(client: httpx.AsyncClient, database_url: str) -> None:
    admin = await account(client, "root@x.io", "admin")
    viewer = await account(client, "v@x.io", "viewer")
    assert set(viewer) == {"id", "email", "role", "is_active", "created_at", "updated_at"}
    assert_problem(await client.post("/api/users", json={"email": "V@X.io", "password": PASSWORD}), 409)
    assert_problem(await client.post("/api/users", json={"email": "w@x.io", "password": "short"}), 400)
    assert_problem(await client.post("/api/users", json={"email": "w@x.io", "password": PASSWORD, "role": "root"}), 400)
    listed = await client.get("/api/users")
    assert [a["email"] for a in listed.json()] == ["root@x.io", "v@x.io"]

    promoted = await client.patch(f"/api/users/{viewer['id']}", json={"role": "editor", "password": "a new password!"})
    assert promoted.json()["role"] == "editor"
    assert (await sign_in(client, "v@x.io")).status_code == 400  # invalid_grant: the old password no longer works
    assert (await sign_in(client, "v@x.io", "a new password!")).status_code == 200
    assert_problem(await client.patch(f"/api/users/{viewer['id']}", json={"password_hash": "x"}), 400)
    assert_problem(await client.patch("/api/users/999", json={"role": "viewer"}), 404)

    # The last active admin can be neither demoted, deactivated nor removed.
    for change in ({"role": "editor"}, {"is_active": False}):
        assert_problem(await client.patch(f"/api/users/{admin['id']}", json=change), 409)
    assert_problem(await client.delete(f"/api/users/{admin['id']}"), 409)
    assert (await client.delete(f"/api/users/{viewer['id']}")).status_code == 204
    assert_problem(await client.delete(f"/api/users/{viewer['id']}"), 404)
    rows = await fetch(database_url, "SELECT email, role, is_active FROM users")
    assert [tuple(row) for row in rows] == [("root@x.io", "admin", True)]


async def test_passwords_never_appear_in_answers_or_logs(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = ["first password 1", "second password 2", "wrong password 3"]
    caplog.set_level(logging.DEBUG)
    answers = [
        await client.post("/api/users", json={"email": "p@x.io", "password": secrets[0], "role": "editor"}),
        await client.post("/api/users", json={"email": "P@x.io", "password": secrets[0]}),  # 409
        await sign_in(client, "p@x.io", secrets[0]),
        await sign_in(client, "p@x.io", secrets[2]),
        await client.patch("/api/users/1", json={"password": secrets[1]}),
        await client.post("/api/users", json={"email": "q@x.io", "password": "short"}),  # 400
        await client.get("/api/users"),
    ]
    assert [a.status_code for a in answers] == [201, 409, 200, 400, 200, 400, 200]
    for answer in answers:
        for secret in [*secrets, "short", "$argon2"]:
            assert secret not in answer.text
    logged = caplog.text
    assert logged  # the requests were logged at all
    for secret in [*secrets, "$argon2"]:
        assert secret not in logged


async def test_first_start_creates_the_admin_from_the_environment(database_url: str) -> None:
    await empty(database_url, "users")
    first = app_settings(
        database_url,
        devdir_admin_email="boss@x.io",
        devdir_admin_password=PASSWORD,
    )
    async with serve(create_app(first), bearer=None) as client:
        assert (await sign_in(client, "boss@x.io")).status_code == 200
    # Accounts exist now: a later start with another admin pair creates nothing.
    later = app_settings(
        database_url,
        devdir_admin_email="other@x.io",
        devdir_admin_password=PASSWORD,
    )
    app: Litestar = create_app(later)
    async with serve(app, bearer=None):
        pass
    rows = await fetch(database_url, "SELECT email, role FROM users")
    assert [tuple(row) for row in rows] == [("boss@x.io", "admin")]
    with pytest.raises(SettingsError, match="DEVDIR_ADMIN"):
        create_app(app_settings(database_url, devdir_admin_email="a@x.io"))


async def test_an_email_in_another_unicode_form_is_the_same_account(
    client: httpx.AsyncClient, database_url: str
) -> None:
    composed, decomposed = "caf\u00e9@x.io", "cafe\u0301@x.io"
    assert (await account(client, decomposed, "viewer"))["email"] == composed
    assert_problem(await client.post("/api/users", json={"email": composed, "password": PASSWORD}), 409)
    for typed in (composed, decomposed):
        assert (await sign_in(client, typed)).status_code == 200, typed
    assert [row["email"] for row in await fetch(database_url, "SELECT email FROM users")] == [composed]
