"""`devdir users ...`: create and list accounts from the command line, on DATABASE_URL's database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import click
import msgspec

from service.accounts.errors import AccountEmailTaken
from service.accounts.schemas import Account, AccountCreate
from service.accounts.service import AccountsService
from service.core.settings import Settings
from service.core.validation import PASSWORD_MIN
from service.db.config import sqlalchemy_config
from service.db.models import ROLES
from service.db.returning import UPDATE_ONE

PASSWORD_ENV = "DEVDIR_USER_PASSWORD"  # noqa: S105 (the variable's name, not a password)


@click.group(name="users", help="Create and list the accounts that can sign in.")
def users_group() -> None:
    pass


@users_group.command(name="create", help="Create an account.")
@click.option("--email", required=True, help="The account's email (case-insensitively unique).")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option(
    "--password",
    envvar=PASSWORD_ENV,
    help=f"The password ({PASSWORD_MIN} characters or more); else read from {PASSWORD_ENV}, else prompted for.",
)
def create(email: str, role: str, password: str | None) -> None:
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        data = msgspec.convert({"email": email, "password": password, "role": role}, AccountCreate)
    except msgspec.ValidationError as exc:
        raise click.BadParameter(str(exc).replace("$.", "")) from exc
    try:
        account = asyncio.run(_create(data))
    except AccountEmailTaken as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"created account {account.id}: {account.email} ({account.role})")


@users_group.command(name="list", help="List the accounts.")
def list_accounts() -> None:
    for account in asyncio.run(_list()):
        state = "active" if account.is_active else "inactive"
        click.echo(f"{account.id}\t{account.email}\t{account.role}\t{state}\t{account.created_at:%Y-%m-%d %H:%M}")


@asynccontextmanager
async def _accounts() -> AsyncIterator[AccountsService]:
    """The accounts service over one transaction on DATABASE_URL's database; the engine is closed afterwards."""
    settings = Settings.from_env()
    config = sqlalchemy_config(settings)
    try:
        # Each operation begins the transaction at its declared level (service.db.isolation); closing the
        # session rolls back what was not committed.
        async with config.get_session() as session:
            yield AccountsService(session, update_one=UPDATE_ONE[settings.backend])
            await session.commit()
    finally:
        await config.get_engine().dispose()


async def _create(data: AccountCreate) -> Account:
    async with _accounts() as accounts:
        return await accounts.create(data)


async def _list() -> list[Account]:
    async with _accounts() as accounts:
        return await accounts.list()


async def create_first_admin(email: str, password: str) -> bool:
    """Whether `email` was created as the first admin (False when any account exists already)."""
    async with _accounts() as accounts:
        return await accounts.create_first_admin(email, password) is not None
