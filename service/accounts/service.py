"""Accounts in the database, over a session; no HTTP here. Passwords arrive in plain text and leave as hashes."""

from __future__ import annotations

from typing import Any, cast

import anyio.to_thread
from advanced_alchemy.exceptions import DuplicateKeyError
from sqlalchemy import Table, insert, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.passwords import hash_password
from service.accounts.schemas import Account, AccountCreate
from service.db.errors import driver_error
from service.db.models import User

ACCOUNT_COLUMNS = (User.id, User.email, User.role, User.is_active, User.created_at, User.updated_at)
EMAIL_INDEX = "uq_users_email_lower"
_table = cast(Table, User.__table__)


class AccountsService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, data: AccountCreate) -> Account:
        # argon2 holds the CPU for about 0.1 s: off the event loop.
        password_hash = await anyio.to_thread.run_sync(hash_password, data.password)
        statement = (
            insert(_table)
            .values(email=data.email, password_hash=password_hash, role=data.role)
            .returning(*ACCOUNT_COLUMNS)
        )
        try:
            row = (await self.session.execute(statement)).one()
        except sa_exc.IntegrityError as exc:
            if getattr(driver_error(exc), "constraint_name", None) == EMAIL_INDEX:
                raise DuplicateKeyError(f"an account with email {data.email!r} already exists") from exc
            raise
        return _account(row)

    async def list(self) -> list[Account]:
        rows = await self.session.execute(select(*ACCOUNT_COLUMNS).order_by(User.id))
        return [_account(row) for row in rows]


def _account(row: tuple[Any, ...]) -> Account:
    # `role` is text in the row; the table's CHECK constraint keeps it one of the Role literals.
    return Account(*row)
