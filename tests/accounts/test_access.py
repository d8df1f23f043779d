"""Sign-in, tokens and scopes: who can call what, and every way a token can be wrong."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from litestar import Litestar

from service.app import create_app
from service.core.settings import SettingsError
from tests.accounts.api import PASSWORD, account, sign_in
from tests.client import TEST_SECRET, assert_problem, serve, token
from tests.pgbouncer import app_settings

DEV = {"name": "Ada", "email": "ada@x.io", "specialty": "math"}


async def bearer(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await sign_in(client, email)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    return {"Authorization": f"Bearer {body['access_token']}"}


def assert_token_error(response: httpx.Response, error: str, status: int = 400) -> dict[str, Any]:
    """An OAuth2 error response of the token route (RFC 6749, 5.2), never cached."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert (response.headers["cache-control"], response.headers["pragma"]) == ("no-store", "no-cache")
    body = dict(response.json())
    assert body["error"] == error
    assert set(body) == {"error", "error_description"}
    return body


def assert_unauthorized(response: httpx.Response) -> None:
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_sign_in_failures_look_alike(client: httpx.AsyncClient) -> None:
    await account(client, "viewer@x.io", "viewer")
    inactive = await account(client, "gone@x.io", "viewer")
    assert (await client.patch(f"/api/users/{inactive['id']}", json={"is_active": False})).status_code == 200
    answers = [
        await sign_in(client, "viewer@x.io", "wrong password!!"),
        await sign_in(client, "nobody@x.io"),
        await sign_in(client, "gone@x.io"),
    ]
    for response in answers:
        assert_token_error(response, "invalid_grant")
    assert len({response.text for response in answers}) == 1  # no answer tells which part was wrong
    assert (await sign_in(client, "VIEWER@X.IO")).status_code == 200  # emails match in any case
    missing = await client.post("/api/access/token", data={"username": "viewer@x.io"})
    assert "`password`" in assert_token_error(missing, "invalid_request")["error_description"]


async def test_token_responses_are_never_cached(client: httpx.AsyncClient) -> None:
    await account(client, "viewer@x.io", "viewer")
    response = await sign_in(client, "viewer@x.io")
    assert response.status_code == 200
    assert (response.headers["cache-control"], response.headers["pragma"]) == ("no-store", "no-cache")  # RFC 6749
    doc = (await client.get("/schema/openapi.json")).json()
    documented = doc["paths"]["/api/access/token"]["post"]["responses"]["200"]["headers"]
    assert {"Cache-Control", "Pragma"} <= set(documented)


@pytest.mark.parametrize(
    ("username", "password", "field"),
    [
        ("ada\x00@x.io", PASSWORD, "username"),  # PostgreSQL text cannot hold a NUL
        ("a" * 250 + "@x.io", PASSWORD, "username"),  # longer than any email an account can have
        ("ada@x.io", "p" * 1025, "password"),  # longer than any password an account can have
    ],
    ids=["nul", "long-username", "long-password"],
)
async def test_sign_in_forms_outside_the_bounds_are_invalid_requests(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, username: str, password: str, field: str
) -> None:
    caplog.set_level(logging.DEBUG)
    error = assert_token_error(await sign_in(client, username, password), "invalid_request")
    assert error["error_description"].startswith(f"`{field}`: ")
    assert "ada" not in caplog.text  # neither written to a log


ROUTES = [
    ("read", "GET", "/api/developers", None),
    ("read", "GET", "/api/developers/1", None),
    ("write", "POST", "/api/developers", DEV),
    ("write", "PATCH", "/api/developers/1", {"name": "Ada L."}),
    ("write", "PATCH", "/api/developers", [{"id": 1, "specialty": "logic"}]),
    ("write", "POST", "/api/developers/bulk-delete", {"ids": [999]}),
    ("admin", "GET", "/api/users", None),
    ("admin", "POST", "/api/users", {"email": "x@x.io", "password": PASSWORD, "role": "viewer"}),
]
ALLOWED = {"viewer": {"read"}, "editor": {"read", "write"}, "admin": {"read", "write", "admin"}}


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
async def test_each_role_against_read_write_and_admin_routes(client: httpx.AsyncClient, role: str) -> None:
    await client.post("/api/developers", json={"name": "Seed", "email": "seed@x.io", "specialty": "s"})  # id 1
    await account(client, f"{role}@x.io", role)
    headers = await bearer(client, f"{role}@x.io")
    for kind, method, path, body in ROUTES:
        response = await client.request(method, path, json=body, headers=headers)
        if kind in ALLOWED[role]:
            assert response.status_code in {200, 201}, (role, method, path, response.text)
        else:
            assert_problem(response, 403)
    imported = await client.post(
        "/api/developers/bulk", content=b"", headers=headers | {"content-type": "application/x-ndjson"}
    )
    assert imported.status_code == (201 if "write" in ALLOWED[role] else 403)
    me = await client.get("/api/users/me", headers=headers)
    assert me.json()["email"] == f"{role}@x.io"
    assert "password" not in me.text


def forged(**changes: Any) -> str:
    now = datetime.now(UTC)
    claims = {"sub": "1", "iat": now, "exp": now + timedelta(minutes=5), "extras": {"scopes": ["developers:read"]}}
    claims |= changes.pop("claims", {})
    return jwt.encode(claims, changes.pop("key", TEST_SECRET), algorithm=changes.pop("algorithm", "HS256"))


def tampered(genuine: str) -> str:
    header, claims, signature = genuine.split(".")
    return f"{header}.{claims}.{signature[:5]}{'B' if signature[5] == 'A' else 'A'}{signature[6:]}"


def swap_claims(genuine: str, other: str) -> str:
    """`genuine`'s header and signature around `other`'s claims: a viewer's token rewritten to claim admin."""
    header, _, signature = genuine.split(".")
    return f"{header}.{other.split('.')[1]}.{signature}"


@pytest.mark.parametrize(
    "bad",
    [
        "",  # no token at all
        forged(claims={"exp": datetime.now(UTC) - timedelta(seconds=1)}),  # expired
        forged(key="another key, long enough to sign a token!"),  # signed with another key
        forged(algorithm="none", key=""),  # alg: none
        tampered(forged()),  # signature changed
        token("viewer").replace(
            token("viewer").split(".")[1], forged(claims={"extras": {"scopes": ["users:admin"]}}).split(".")[1]
        ),
        "not.a.token",
    ],
    ids=["missing", "expired", "other-key", "alg-none", "bad-signature", "swapped-claims", "garbage"],
)
async def test_bad_tokens_are_401(app: Litestar, bad: str) -> None:
    async with serve(app, bearer=None) as client:
        headers = {"Authorization": f"Bearer {bad}"} if bad else {}
        for method, path in [("GET", "/api/developers"), ("GET", "/api/users/me"), ("POST", "/api/developers")]:
            assert_unauthorized(await client.request(method, path, json=DEV, headers=headers))
        assert (await client.get("/health")).status_code == 200  # probes need no token
        assert (await client.get("/schema/openapi.json")).status_code == 200


@pytest.mark.parametrize("value", [token("admin"), f"Bearer {token('admin')}"], ids=["bare", "bearer"])
async def test_a_token_in_a_cookie_is_not_accepted(app: Litestar, value: str) -> None:
    # Header only: a browser would send a cookie by itself with a cross-site request.
    async with serve(app, bearer=None) as client:
        client.cookies.set("token", value)  # the cookie Litestar's OAuth2PasswordBearerAuth reads by default
        assert_unauthorized(await client.get("/api/developers"))
        assert_unauthorized(await client.post("/api/developers", json=DEV))
        assert (await client.get("/api/developers", headers={"Authorization": f"Bearer {token()}"})).status_code == 200


async def test_a_deactivated_account_cannot_sign_in_and_its_token_lasts_until_expiry(client: httpx.AsyncClient) -> None:
    editor = await account(client, "ed@x.io", "editor")
    headers = await bearer(client, "ed@x.io")
    assert (await client.patch(f"/api/users/{editor['id']}", json={"is_active": False})).json()["is_active"] is False
    assert_token_error(await sign_in(client, "ed@x.io"), "invalid_grant")
    # The trade-off of checking tokens without a database round trip (docs/security.md): valid until it expires.
    assert (await client.get("/api/developers", headers=headers)).status_code == 200


async def test_sign_in_is_rate_limited_per_address(database_url: str) -> None:
    settings = app_settings(database_url, login_attempts_per_minute=3)
    async with serve(create_app(settings), bearer=None) as client:
        for _ in range(3):
            assert_token_error(await sign_in(client, "nobody@x.io"), "invalid_grant")
        limited = await sign_in(client, "nobody@x.io")
        assert_problem(limited, 429)
        assert 0 < int(limited.headers["retry-after"]) <= 60
        assert (await client.get("/health")).status_code == 200  # only the sign-in route is limited


@pytest.mark.parametrize("secret", ["", "short"])
def test_no_or_short_secret_key_stops_the_start(database_url: str, secret: str) -> None:
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        create_app(app_settings(database_url, secret_key=secret))


async def test_a_remembered_token_still_expires(app: Litestar) -> None:
    # The middleware remembers verified tokens (service.accounts.auth.VerifiedTokenCache), never past their exp.
    async with serve(app, bearer=None) as client:
        short = forged(claims={"exp": datetime.now(UTC) + timedelta(seconds=2)})
        headers = {"Authorization": f"Bearer {short}"}
        assert (await client.get("/api/developers", headers=headers)).status_code == 200
        assert (await client.get("/api/developers", headers=headers)).status_code == 200  # served from memory
        assert_unauthorized(await client.get("/api/developers", headers={"Authorization": f"Bearer {tampered(short)}"}))
        await asyncio.sleep(2.5)
        assert_unauthorized(await client.get("/api/developers", headers=headers))


@pytest.mark.parametrize("scheme", ["Token", "Basic", "JWT", "Bearer:", ""])
async def test_only_the_bearer_scheme_carries_a_token(app: Litestar, scheme: str) -> None:
    async with serve(app, bearer=None) as client:
        genuine = token("admin")
        refused = {"Authorization": f"{scheme} {genuine}".lstrip()}
        for method, path in [("GET", "/api/developers"), ("GET", "/api/users/me"), ("POST", "/api/developers")]:
            assert_unauthorized(await client.request(method, path, json=DEV, headers=refused))


@pytest.mark.parametrize("written", ["Bearer {}", "bearer {}", "BEARER {}", "Bearer   {}"])
async def test_the_bearer_scheme_in_any_case_and_spacing_rfc_7235_allows(app: Litestar, written: str) -> None:
    async with serve(app, bearer=None) as client:
        headers = {"Authorization": written.format(token("admin"))}
        assert (await client.get("/api/developers", headers=headers)).status_code == 200
        assert_unauthorized(await client.get("/api/developers", headers={"Authorization": written.format("")}))


@pytest.mark.parametrize("subject", [str(2**70), str(2**63), "\u0661", " 1", "1 ", "+1", "-1", "1e3", ""])
async def test_a_signed_token_whose_subject_is_no_account_id_is_401(app: Litestar, subject: str) -> None:
    # Signed with the service's own key: only the subject is wrong. 2**70 reached PostgreSQL as a bigint: a 500.
    claims = {"sub": subject, "extras": {"scopes": ["developers:read", "developers:write", "users:admin"]}}
    headers = {"Authorization": f"Bearer {forged(claims=claims)}"}
    async with serve(app, bearer=None) as client:
        assert_unauthorized(await client.get("/api/users/me", headers=headers))
        submitted = await client.post(
            "/api/developers/imports", content=b"", headers=headers | {"content-type": "application/x-ndjson"}
        )
        assert_unauthorized(submitted)
        largest = {"Authorization": f"Bearer {forged(claims=claims | {'sub': str(2**63 - 1)})}"}
        assert_problem(await client.get("/api/users/me", headers=largest), 404)  # an id, of no account
