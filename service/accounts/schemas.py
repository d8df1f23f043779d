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
