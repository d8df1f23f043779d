"""What the driver said: asyncpg's own exception, under the DBAPI wrapper SQLAlchemy raises."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc


def driver_error(exc: BaseException) -> BaseException:
    """asyncpg's exception behind a SQLAlchemy error (its adapter keeps it as the cause), or behind the adapter's
    own error as a connect through `engine.raw_connection()` raises it (with asyncpg's as `orig`: the hot reads'
    and the export's checkout, when the server refuses a new connection); `exc` itself otherwise, as when the bulk
    paths' COPY raises asyncpg's exception directly."""
    orig = getattr(exc, "orig", None)
    if isinstance(exc, sa_exc.EmulatedDBAPIException):
        return orig or exc
    return getattr(orig, "__cause__", None) or exc


def violated_constraint(exc: BaseException) -> str | None:
    """The name of the constraint or unique index an integrity error broke, as PostgreSQL reports it."""
    name = getattr(driver_error(exc), "constraint_name", None)
    return name if isinstance(name, str) else None
