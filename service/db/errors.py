"""What the driver said: asyncpg's own exception, under the DBAPI wrapper SQLAlchemy raises."""

from __future__ import annotations


def driver_error(exc: BaseException) -> BaseException:
    """asyncpg's exception behind a SQLAlchemy error (its adapter keeps it as the cause); `exc` itself otherwise,
    as when the bulk paths' COPY raises asyncpg's exception directly."""
    return getattr(getattr(exc, "orig", None), "__cause__", None) or exc
