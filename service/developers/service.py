"""Single-row writes for developers, over the request's session; no HTTP here. (The hot reads are in reads.py.)

Why not advanced-alchemy's SQLAlchemyAsyncRepositoryService: it loads ORM instances into the identity map and
reads back after writes. Each write here is one Core statement whose columns go straight into a msgspec Struct
(RETURNING gives a write its row in the same round trip).

Round trips of a write, counted at the wire (tests/developers/test_round_trips.py): 3, BEGIN, the statement and
COMMIT. The transaction is the request's, in the SQLAlchemy plugin's session: it commits before a 2xx answer
leaves and rolls back on any error (service.web.transaction), and later writes of the request join it. Each write
begins it at its declared level (service.db.isolation: READ COMMITTED, and why that is enough).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Executable, Row, Table, bindparam, delete, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import isolation
from service.db.errors import violated_constraint
from service.db.models import DEVELOPERS_EMAIL_INDEX
from service.db.models import Developer as DeveloperRow
from service.developers.errors import DeveloperNotFound, EmailTaken
from service.developers.schemas import Developer, DeveloperCreate, DeveloperUpdate

DEVELOPER_COLUMNS = (
    DeveloperRow.id,
    DeveloperRow.name,
    DeveloperRow.email,
    DeveloperRow.specialty,
    DeveloperRow.created_at,
    DeveloperRow.updated_at,
)
_table = cast(Table, DeveloperRow.__table__)

_GET = select(*DEVELOPER_COLUMNS).where(DeveloperRow.id == bindparam("id"))


class DevelopersService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, developer_id: int) -> Developer:
        """One developer, in the request's transaction (a PATCH that changes nothing answers with it)."""
        row = (await self.session.execute(_GET, {"id": developer_id})).one_or_none()
        if row is None:
            raise DeveloperNotFound(developer_id)
        return _developer(row)

    async def create(self, data: DeveloperCreate) -> Developer:
        await isolation.begin(self.session, "developers.create")
        statement = (
            insert(_table)
            .values(name=data.name, email=data.email, specialty=data.specialty)
            .returning(*DEVELOPER_COLUMNS)
        )
        row = await self._write_one(statement, email=data.email)
        assert row is not None  # INSERT ... RETURNING always returns its row
        return row

    async def update(self, developer_id: int, data: DeveloperUpdate) -> Developer:
        await isolation.begin(self.session, "developers.update")
        changes = data.changes()
        if not changes:
            return await self.get(developer_id)
        statement = (
            update(_table)
            .where(DeveloperRow.id == developer_id)
            .values(**changes)  # and updated_at, by the model's onupdate
            .returning(*DEVELOPER_COLUMNS)
        )
        row = await self._write_one(statement, email=changes.get("email"))
        if row is None:
            raise DeveloperNotFound(developer_id)
        return row

    async def delete(self, developer_id: int) -> None:
        await isolation.begin(self.session, "developers.delete")
        result = await self.session.execute(delete(_table).where(DeveloperRow.id == developer_id))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise DeveloperNotFound(developer_id)

    async def _write_one(self, statement: Executable, *, email: str | None) -> Developer | None:
        try:
            result = await self.session.execute(statement)
        except sa_exc.IntegrityError as exc:
            if violated_constraint(exc) == DEVELOPERS_EMAIL_INDEX:
                raise EmailTaken(email or "") from exc
            raise
        row = result.one_or_none()
        return None if row is None else _developer(row)


def _developer(row: Row[*tuple[Any, ...]]) -> Developer:
    return Developer(**row._mapping)
