"""The token route's failures as OAuth2 clients read them (RFC 6749, 5.2), and 415 for a body that is not a form."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.accounts.api import PASSWORD, account, sign_in
from tests.accounts.test_access import assert_token_error
from tests.client import assert_problem

TOKEN = "/api/access/token"


@pytest.mark.parametrize("grant_type", ["client_credentials", "authorization_code", "refresh_token", "PASSWORD", ""])
async def test_another_grant_type_is_unsupported_before_any_field_is_read(
    client: httpx.AsyncClient, grant_type: str
) -> None:
    # A client asking for another grant sends none of the password grant's fields: the grant type is the error.
    error = assert_token_error(await client.post(TOKEN, data={"grant_type": grant_type}), "unsupported_grant_type")
    assert "password" in error["error_description"]


async def test_the_password_grant_with_or_without_grant_type_scope_and_a_public_client_id(
    client: httpx.AsyncClient,
) -> None:
    await account(client, "v@x.io", "viewer")
    for extra in ({}, {"grant_type": "password"}, {"scope": "developers:read", "client_id": "swagger-ui"}):
        signed_in = await client.post(TOKEN, data={"username": "v@x.io", "password": PASSWORD, **extra})
        assert signed_in.status_code == 200, (extra, signed_in.text)
        assert signed_in.json()["token_type"] == "bearer"


@pytest.mark.parametrize(
    ("credentials", "refused"),
    [
        (":", False),  # Swagger UI's default: Basic with an empty client id and secret
        ("swagger-ui:", False),  # a public client naming itself
        ("app:secret", True),
        ("no-colon", True),
        (None, True),  # not base64 at all
    ],
)
async def test_client_authentication_is_refused_as_invalid_client_with_www_authenticate(
    client: httpx.AsyncClient, credentials: str | None, refused: bool
) -> None:
    await account(client, "v@x.io", "viewer")
    encoded = "%%%" if credentials is None else base64.b64encode(credentials.encode()).decode()
    answer = await client.post(
        TOKEN,
        data={"username": "v@x.io", "password": PASSWORD, "grant_type": "password"},
        headers={"Authorization": f"Basic {encoded}"},
    )
    if refused:
        assert_token_error(answer, "invalid_client", 401)
        assert answer.headers["www-authenticate"] == 'Basic realm="devdir"'
    else:
        assert answer.status_code == 200, answer.text


async def test_a_client_secret_in_the_form_is_invalid_client(client: httpx.AsyncClient) -> None:
    await account(client, "v@x.io", "viewer")
    form = {"username": "v@x.io", "password": PASSWORD, "client_id": "app", "client_secret": "s3cret"}
    answer = await client.post(TOKEN, data=form)
    assert_token_error(answer, "invalid_client", 401)
    assert "www-authenticate" not in answer.headers  # only demanded when the Authorization header was used


@pytest.mark.parametrize(
    "send",
    [
        {"json": {"username": "v@x.io", "password": PASSWORD}},
        {"files": {"username": (None, "v@x.io"), "password": (None, PASSWORD)}},
        {"content": f"username=v@x.io&password={PASSWORD}", "headers": {"Content-Type": "text/plain"}},
        {"content": b""},
    ],
    ids=["json", "multipart", "text", "no-content-type"],
)
async def test_a_body_that_is_not_a_url_encoded_form_is_415_naming_the_form_type(
    client: httpx.AsyncClient, send: dict[str, object]
) -> None:
    await account(client, "v@x.io", "viewer")
    answer = await client.post(TOKEN, **send)  # type: ignore[arg-type]
    problem = assert_problem(answer, 415)
    assert "application/x-www-form-urlencoded" in problem["detail"]
    assert answer.headers["accept-post"] == "application/x-www-form-urlencoded"


async def test_error_descriptions_stay_within_rfc_6749s_characters(client: httpx.AsyncClient) -> None:
    # error_description: printable ASCII without '"' or '\\' (section 5.2), whatever the client sent.
    odd = 'é"\\\x01' * 5
    for form in ({"grant_type": odd}, {"username": odd * 40, "password": "x"}):
        description = (await client.post(TOKEN, data=form)).json()["error_description"]
        assert all(" " <= c <= "~" and c not in '"\\' for c in description), description


async def test_a_wrong_password_answers_as_an_unknown_email_does(client: httpx.AsyncClient) -> None:
    await account(client, "v@x.io", "viewer")
    wrong, unknown = await sign_in(client, "v@x.io", "not the password"), await sign_in(client, "w@x.io")
    assert assert_token_error(wrong, "invalid_grant") == assert_token_error(unknown, "invalid_grant")
