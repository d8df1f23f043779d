"""The token route's errors as OAuth2 clients read them: RFC 6749, section 5.2.

An OAuth2 client (Swagger UI's Authorize dialog, an SDK) reads a failed token request as `{"error": ...,
"error_description": ...}` with a code it knows, not as a problem document. So on this route alone:

- a form it cannot use (a field missing, too long, holding a NUL) is 400 `invalid_request`;
- a `grant_type` other than `password` is 400 `unsupported_grant_type` (an absent one is taken as `password`, as
  most password-flow clients and curl examples assume);
- a wrong email or password, or an inactive account, is 400 `invalid_grant`, one answer for the three;
- a client secret is 401 `invalid_client`: this service has no confidential clients, so a client that
  authenticates is one it does not know (with `WWW-Authenticate: Basic` when it used the Authorization header,
  as 5.2 demands). A `client_id` alone, or Basic credentials with an empty secret (what Swagger UI sends by
  default), only name a public client, and are accepted.

Every one carries `Cache-Control: no-store` and `Pragma: no-cache`, as the token response does (5.1). What is not an
OAuth2 error keeps its problem document: 415 for a body that is not a form, 429 for too many attempts, 503.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Any, Literal
from urllib.parse import parse_qsl

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from service.core.validation import named_field, readable
from service.web.json_body import form_only

ErrorCode = Literal["invalid_request", "invalid_client", "invalid_grant", "unsupported_grant_type"]
MEDIA_TYPE = "application/json"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenError(msgspec.Struct, frozen=True):
    """An OAuth2 error response (RFC 6749, section 5.2)."""

    error: ErrorCode
    error_description: str


class OAuthError(HTTPException):
    """A failed token request, answered as RFC 6749 says (`token_error`)."""

    def __init__(
        self, error: ErrorCode, description: str, *, status_code: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail=description, status_code=status_code, headers=headers)
        self.error: ErrorCode = error


def token_error(_: Request[Any, Any, Any], exc: OAuthError) -> Response[TokenError]:
    return Response(
        TokenError(exc.error, _description(exc.detail)),
        status_code=exc.status_code,
        media_type=MEDIA_TYPE,
        headers={**(exc.headers or {}), **NO_STORE},
    )


def invalid_form(request: Request[Any, Any, Any], exc: ValidationException) -> Response[TokenError]:
    """Litestar's 400 for a form that does not fit the sign-in form, as `invalid_request` naming the field."""
    problems = [item for item in exc.extra if isinstance(item, dict)] if isinstance(exc.extra, list) else []
    described = []
    for item in problems:
        message = str(item.get("message", "invalid"))
        key = item.get("key")
        if key in {None, "data"}:  # a missing field, or one __post_init__ refused, is named in the message
            key = named_field(message) or "form"
        described.append(f"`{key}`: {readable(message)}")
    return token_error(request, OAuthError("invalid_request", "; ".join(described) or exc.detail))


async def check_token_request(request: Request[Any, Any, Any]) -> None:
    """The token route's `before_request` hook, run before Litestar reads the form into the sign-in fields: 415 for
    a body that is not a form, then the grant type and client authentication, which come before any field of the
    password grant (a client asking for another grant sends none of them)."""
    form_only(request)
    # Latin-1 maps every byte to a character, so any body parses; UTF-8 is only needed to show a value back.
    body = (await request.body()).decode("latin-1")
    form = dict(parse_qsl(body, keep_blank_values=True, encoding="latin-1"))
    grant_type = form.get("grant_type")
    if grant_type is not None and grant_type != "password":
        shown = grant_type[:40].encode("latin-1").decode("utf-8", "replace")
        raise OAuthError("unsupported_grant_type", f"grant_type must be password, not {shown!r}")
    _refuse_client_authentication(request, form.get("client_secret"))


def _refuse_client_authentication(request: Request[Any, Any, Any], client_secret: str | None) -> None:
    """Raise `invalid_client` if the request authenticates a client (a secret in the form or in Basic credentials);
    a public client's `client_id` alone passes."""
    if client_secret:
        raise OAuthError(
            "invalid_client", "this service has no confidential clients: send no client_secret", status_code=401
        )
    header = request.headers.get("authorization")
    if header is None:
        return
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        return  # not client authentication (a bearer token sent along is ignored: this route needs none)
    try:
        _, separator, secret = b64decode(credentials.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        separator, secret = "", "?"
    if not separator or secret:
        raise OAuthError(
            "invalid_client",
            "this service has no confidential clients: send Basic credentials with an empty secret, or none",
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="devdir"'},
        )


def _description(text: str) -> str:
    # RFC 6749: error_description is printable ASCII without `"` or `\\`.
    ascii_text = text.encode("ascii", "replace").decode()
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "'" if c == '"' else "?" for c in ascii_text)


EXCEPTION_HANDLERS = {OAuthError: token_error, ValidationException: invalid_form}
