"""Accounts in the database, over a session; no HTTP here. Passwords arrive in plain text and leave as hashes.

Changing or removing an account runs SERIALIZABLE in a transaction of its own, replayed on a serialization
failure (service.db.isolation): that is what keeps the last active admin, without locking every admin's row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import anyio.to_thread
import msgspec
from sqlalchemy import Row, Table, Text, bindparam, delete, func, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.errors import AccountEmailTaken, AccountNotFound, LastAdmin
from service.accounts.passwords import hash_password, verify_password
from service.accounts.schemas import Account, AccountCreate, AccountUpdate
from service.db import isolation
from service.db.errors import violated_constraint
from service.db.models import USERS_EMAIL_INDEX, User
from service.db.returning import UpdateOne, update_returning

ACCOUNT_COLUMNS = (User.id, User.email, User.role, User.is_active, User.created_at, User.updated_at)
_table = cast(Table, User.__table__)
_BY_EMAIL = select(*ACCOUNT_COLUMNS, User.password_hash).where(func.lower(User.email) == func.lower(bindparam("e")))
_ACTIVE_ADMINS = select(User.id).where(User.role == "admin", User.is_active)


class AccountsService:
    def __init__(
        self,
        session: AsyncSession,
        retried: Callable[[str], None] | None = None,
        update_one: UpdateOne = update_returning,
    ) -> None:
        self.session = session
        self.retried = retried  # told of each replayed transaction (a metric), if anyone asks
        # UPDATE ... RETURNING, or the UPDATE and a SELECT where the server has no RETURNING for it (MariaDB).
        self.update_one = update_one

    async def authenticate(self, email: str, password: str) -> Account | None:
        """The active account with this email and password, else None; one query and one argon2 verification
        either way, so an unknown email costs what a wrong password does."""
        row = (await self.session.execute(_BY_EMAIL, {"e": email})).one_or_none()
        password_hash = None if row is None else row.password_hash
        matches = await anyio.to_thread.run_sync(verify_password, password, password_hash)
        if row is None or not matches or not row.is_active:
            return None
        return _account(row)

    async def create(self, data: AccountCreate) -> Account:
        # argon2 holds the CPU for about 0.1 s: off the event loop.
        password_hash = await anyio.to_thread.run_sync(hash_password, data.password)
        await isolation.begin(self.session, "accounts.create")
        statement = (
            insert(_table)
            .values(email=data.email, password_hash=password_hash, role=data.role)
            .returning(*ACCOUNT_COLUMNS)
        )
        return _account(await self._write_one(statement, data.email))

    async def create_first_admin(self, email: str, password: str) -> Account | None:
        """The admin `email`, if no account exists at all (first start); None otherwise. Safe to race."""
        await isolation.begin(self.session, "accounts.first_admin")
        if (await self.session.execute(select(func.count()).select_from(_table))).scalar_one():
            return None
        password_hash = await anyio.to_thread.run_sync(hash_password, password)
        no_account = ~select(User.id).exists()
        rows = select(bindparam("e", type_=Text), bindparam("h", type_=Text), bindparam("r", type_=Text))
        rows = rows.where(no_account)
        statement = insert(_table).from_select(["email", "password_hash", "role"], rows).returning(*ACCOUNT_COLUMNS)
        row = (await self.session.execute(statement, {"e": email, "h": password_hash, "r": "admin"})).one_or_none()
        return None if row is None else _account(row)

    async def get(self, account_id: int) -> Account:
        row = (await self.session.execute(select(*ACCOUNT_COLUMNS).where(User.id == account_id))).one_or_none()
        if row is None:
            raise AccountNotFound(account_id)
        return _account(row)

    async def list(self) -> list[Account]:
        rows = await self.session.execute(select(*ACCOUNT_COLUMNS).order_by(User.id))
        return [_account(row) for row in rows]

    async def update(self, account_id: int, data: AccountUpdate) -> Account:
        changes: dict[str, Any] = {f: v for f in ("role", "is_active") if (v := getattr(data, f)) is not msgspec.UNSET}
        if isinstance(data.password, str):
            # Hashed once, before the transaction: a replay reuses it, and no transaction waits on argon2.
            changes["password_hash"] = await anyio.to_thread.run_sync(hash_password, data.password)
        if not changes:
            return await self.get(account_id)
        removes_admin = changes.get("role", "admin") != "admin" or changes.get("is_active") is False

        async def attempt() -> Account:
            if removes_admin and await self._is_last_admin(account_id):
                raise LastAdmin()
            statement = update(_table).where(User.id == account_id).values(**changes)  # updated_at: onupdate
            row = await self.update_one(self.session, statement, ACCOUNT_COLUMNS, User.id == account_id)
            if row is None:
                raise AccountNotFound(account_id)
            return _account(row)

        return await isolation.replayed(self.session, "accounts.update", attempt, self.retried)

    async def delete(self, account_id: int) -> None:
        async def attempt() -> None:
            if await self._is_last_admin(account_id):
                raise LastAdmin()
            result = await self.session.execute(delete(_table).where(User.id == account_id))
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise AccountNotFound(account_id)

        await isolation.replayed(self.session, "accounts.delete", attempt, self.retried)

    async def _is_last_admin(self, account_id: int) -> bool:
        # Read in a SERIALIZABLE transaction: if a concurrent one removes another admin after this read, one of
        # the two fails with 40001 and is replayed, and its replay reads the other's outcome. No row is locked on
        # PostgreSQL; MariaDB's SERIALIZABLE reads with shared locks instead, and the two writers' UPDATEs
        # deadlock: one is rolled back (1213) and replayed the same way.
        admins = (await self.session.execute(_ACTIVE_ADMINS)).scalars().all()
        return list(admins) == [account_id]

    async def _write_one(self, statement: Any, email: str) -> Row[*tuple[Any, ...]]:
        try:
            return (await self.session.execute(statement)).one()
        except sa_exc.IntegrityError as exc:
            if violated_constraint(exc) == USERS_EMAIL_INDEX:
                raise AccountEmailTaken(email) from exc
            raise


def _account(row: Row[*tuple[Any, ...]]) -> Account:
    """The account in `row`, by column name (a row may carry more, like the password hash). `role` is text in the
    row; the table's CHECK constraint keeps it one of the Role literals, which msgspec checks again here."""
    return msgspec.convert(row, Account, from_attributes=True)
