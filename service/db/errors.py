"""What the driver said: asyncpg's own exception, under the DBAPI wrapper SQLAlchemy raises."""

from __future__ import annotations


def driver_error(exc: BaseException) -> BaseException:
    """asyncpg's exception behind a SQLAlchemy error (its adapter keeps it as the cause); `exc` itself otherwise,
    as when the bulk paths' COPY raises asyncpg's exception directly."""
    return getattr(getattr(exc, "orig", None), "__cause__", None) or exc


def violated_constraint(exc: BaseException) -> str | None:
    """The name of the constraint or unique index an integrity error broke, as PostgreSQL reports it."""
    name = getattr(driver_error(exc), "constraint_name", None)
    return name if isinstance(name, str) else None
