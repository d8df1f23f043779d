"""An UPDATE of one row that answers the row as it left it: one statement where the server has UPDATE ... RETURNING
(PostgreSQL), else the UPDATE and then a SELECT of the row in the same transaction, under the row lock the UPDATE
took, so no other write can come between them (MariaDB has RETURNING for INSERT and DELETE only). Chosen once from
the server DATABASE_URL names, where a service is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Row, Update, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.core.database_urls import Backend

WrittenRow = Row[*tuple[Any, ...]]


class UpdateOne(Protocol):
    async def __call__(
        self, session: AsyncSession, statement: Update, columns: Sequence[Any], key: ColumnElement[bool]
    ) -> WrittenRow | None:
        """Run `statement` (an UPDATE of the row `key` names) and give that row's `columns`, None if it matched
        no row."""
        ...


async def update_returning(
    session: AsyncSession, statement: Update, columns: Sequence[Any], key: ColumnElement[bool]
) -> WrittenRow | None:
    """PostgreSQL: one statement, one round trip."""
    return (await session.execute(statement.returning(*columns))).one_or_none()


async def update_then_select(
    session: AsyncSession, statement: Update, columns: Sequence[Any], key: ColumnElement[bool]
) -> WrittenRow | None:
    """MariaDB: two statements (the affected-row count tells whether the UPDATE matched)."""
    if (await session.execute(statement)).rowcount == 0:  # type: ignore[attr-defined]
        return None
    return (await session.execute(select(*columns).where(key))).one()


UPDATE_ONE: dict[Backend, UpdateOne] = {"postgresql": update_returning, "mariadb": update_then_select}
