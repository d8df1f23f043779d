"""Bodies of the accounts API and CLI (msgspec Structs). No struct here carries a password hash."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from service.developers.schemas import Email

Role = Literal["viewer", "editor", "admin"]
# Long enough to resist guessing at argon2's cost; no composition rules (NIST SP 800-63B).
Password = Annotated[str, msgspec.Meta(min_length=12, max_length=1024)]


class Account(msgspec.Struct, frozen=True):
    """An account as it is shown: never its password or hash."""

    id: int
    email: str
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime


class AccountCreate(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    email: Email
    password: Password
    role: Role = "viewer"


class AccountUpdate(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """Any of role, is_active, password; those left out keep their value."""

    role: Role | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    password: Password | msgspec.UnsetType = msgspec.UNSET


class SignIn(msgspec.Struct, frozen=True):
    """The OAuth2 password grant's form (`grant_type` and `scope` may come too; the role decides the scopes)."""

    username: str
    password: str


class AccessToken(msgspec.Struct, frozen=True):
    """An OAuth2 bearer token response (RFC 6749, section 5.1)."""

    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
