"""The first admin: created at start-up from DEVDIR_ADMIN_EMAIL / DEVDIR_ADMIN_PASSWORD when no account exists."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar import Litestar
from sqlalchemy import exc as sa_exc

from service.accounts.service import AccountsService
from service.core.settings import Settings

logger = logging.getLogger("service.accounts")


def first_admin(settings: Settings, db: SQLAlchemyAsyncConfig) -> Callable[[Litestar], Awaitable[None]]:
    """A start-up hook (the pair was validated with the other settings, by Settings.check)."""
    admin = settings.first_admin()

    async def create(_: Litestar) -> None:
        if admin is None:
            return
        try:
            async with db.get_session() as session:  # closing it rolls back what was not committed
                account = await AccountsService(session).create_first_admin(admin.email, admin.password)
                await session.commit()
        except (OSError, sa_exc.SQLAlchemyError) as exc:
            # Not migrated yet, or the database is away: serve anyway (/ready tells), and try on the next start.
            logger.warning("first admin not created: %s", type(exc).__name__)
            return
        if account is not None:
            logger.info("created the first admin account, %s", account.email)

    return create
