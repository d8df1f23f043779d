"""Bodies of the accounts API and CLI (msgspec Structs). No struct here carries a password hash."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from service.core.limits import EMAIL_MAX
from service.core.validation import PASSWORD_MAX, Email, Password, ShownEmail, Timestamp, normalize_fields
from service.db.models import Role

# Put in NFC as they are decoded, as every email is (service.core.validation).
_EMAIL = {"email": EMAIL_MAX}
_IGNORED_MAX = 1000  # scope and client_id are read by nothing; bounded all the same
_USERNAME = {"username": EMAIL_MAX}  # so that it finds the account whatever form of the email is typed


class Account(msgspec.Struct, frozen=True):
    """An account as it is shown: never its password or hash."""

    id: Annotated[int, msgspec.Meta(examples=[7])]
    email: ShownEmail
    role: Role
    is_active: bool
    created_at: Timestamp
    updated_at: Timestamp


class AccountCreate(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    email: Email
    password: Password
    role: Role = "viewer"

    def __post_init__(self) -> None:
        normalize_fields(self, _EMAIL)


class AccountUpdate(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """Any of role, is_active, password; those left out keep their value."""

    role: Role | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    password: Password | msgspec.UnsetType = msgspec.UNSET


class SignIn(msgspec.Struct, frozen=True):
    """The OAuth2 password grant's form (RFC 6749, section 4.3.2). `grant_type` is `password` or absent (taken as
    `password`); `scope` and a public client's `client_id` may come, and are ignored: the account's role decides
    the scopes (service.accounts.token_errors checks the grant type and refuses client secrets).

    Bounded like the accounts it signs in to, so an absurd form is a 400 that costs neither a query nor an argon2
    computation. The username is compared in SQL, and PostgreSQL text cannot hold a NUL; it is put in Unicode NFC,
    as account emails are. A password never reaches the database, so it may hold any character, as it may when
    the account is created.
    """

    username: Annotated[str, msgspec.Meta(max_length=EMAIL_MAX)]
    password: Annotated[str, msgspec.Meta(max_length=PASSWORD_MAX)]
    grant_type: Literal["password"] = "password"
    scope: Annotated[str, msgspec.Meta(max_length=_IGNORED_MAX)] = ""
    client_id: Annotated[str, msgspec.Meta(max_length=_IGNORED_MAX)] = ""

    def __post_init__(self) -> None:
        if "\x00" in self.username:
            raise ValueError("field `username` holds a NUL character")
        normalize_fields(self, _USERNAME)


class AccessToken(msgspec.Struct, frozen=True):
    """An OAuth2 bearer token response (RFC 6749, section 5.1)."""

    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
