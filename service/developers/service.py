"""Queries and writes for developers, over the request's session; no HTTP here.

Why not advanced-alchemy's SQLAlchemyAsyncRepositoryService: it loads ORM instances into the identity map and
reads back after writes. The routes here are the hot paths of the service, so each is one Core statement whose
columns go straight into msgspec Structs (RETURNING gives writes their row in the same round trip).

Round trips per request, counted from the connection's side (pre-ping is one more at checkout when
DB_POOL_PRE_PING is on):
- reads: 1. They run in AUTOCOMMIT: a single SELECT is its own consistent snapshot, so the BEGIN and COMMIT
  a transaction would add buy nothing but two more round trips.
- writes: 3 (BEGIN, the statement, COMMIT). The transaction is kept on purpose: the SQLAlchemy plugin commits
  on success and rolls back on any error, and later writes join it (the change-event outbox).
"""

from __future__ import annotations

from typing import cast

from advanced_alchemy.exceptions import DuplicateKeyError, NotFoundError
from litestar.di import NamedDependency
from sqlalchemy import Executable, Table, bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.errors import violated_constraint
from service.db.models import Developer as DeveloperRow
from service.developers.keyset import encode as encode_cursor
from service.developers.schemas import Developer, DeveloperCreate, DeveloperPage, DeveloperUpdate
from service.validation import nfc

DEVELOPER_COLUMNS = (
    DeveloperRow.id,
    DeveloperRow.name,
    DeveloperRow.email,
    DeveloperRow.specialty,
    DeveloperRow.created_at,
    DeveloperRow.updated_at,
)
_table = cast(Table, DeveloperRow.__table__)
EMAIL_INDEX = "uq_developers_email_lower"


def _listing(*, by_specialty: bool, after_cursor: bool) -> Executable:
    statement = select(*DEVELOPER_COLUMNS)
    if by_specialty:
        statement = statement.where(DeveloperRow.specialty == bindparam("specialty"))
    if after_cursor:
        # A row comparison, so PostgreSQL starts an index range scan right after the cursor.
        after = tuple_(bindparam("after_name"), bindparam("after_id"))
        statement = statement.where(tuple_(DeveloperRow.name, DeveloperRow.id) > after)
    return statement.order_by(DeveloperRow.name, DeveloperRow.id).limit(bindparam("limit"))


# The read statements are built once, with bind parameters: building a select() per request, and adapting the
# cached compilation to a new statement object, cost more CPU than the database round trip itself.
_LIST = {
    (by_specialty, after_cursor): _listing(by_specialty=by_specialty, after_cursor=after_cursor)
    for by_specialty in (False, True)
    for after_cursor in (False, True)
}
_GET = select(*DEVELOPER_COLUMNS).where(DeveloperRow.id == bindparam("id"))


class DevelopersService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _read(self, statement: Executable, params: dict[str, object]) -> list[Developer]:
        connection = await self.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        result = await connection.execute(statement, params)
        return [Developer(*row) for row in result]

    async def list(self, *, specialty: str | None, limit: int, after: tuple[str, int] | None) -> DeveloperPage:
        # One row more than asked tells whether another page exists, without a COUNT.
        # Specialties are stored in NFC: so is the one asked for.
        params: dict[str, object] = {"specialty": specialty and nfc(specialty), "limit": limit + 1}
        if after is not None:
            params["after_name"], params["after_id"] = after
        items = await self._read(_LIST[specialty is not None, after is not None], params)
        if len(items) <= limit:
            return DeveloperPage(items=items, next_cursor=None)
        items = items[:limit]
        return DeveloperPage(items=items, next_cursor=encode_cursor(items[-1].name, items[-1].id))

    async def get(self, developer_id: int) -> Developer:
        rows = await self._read(_GET, {"id": developer_id})
        if not rows:
            raise _not_found(developer_id)
        return rows[0]

    async def create(self, data: DeveloperCreate) -> Developer:
        statement = (
            insert(_table)
            .values(name=data.name, email=data.email, specialty=data.specialty)
            .returning(*DEVELOPER_COLUMNS)
        )
        row = await self._write_one(statement, email=data.email)
        assert row is not None  # INSERT ... RETURNING always returns its row
        return row

    async def update(self, developer_id: int, data: DeveloperUpdate) -> Developer:
        changes = data.changes()
        if not changes:
            return await self.get(developer_id)
        statement = (
            update(_table)
            .where(DeveloperRow.id == developer_id)
            .values(**changes, updated_at=func.now())
            .returning(*DEVELOPER_COLUMNS)
        )
        row = await self._write_one(statement, email=changes.get("email"))
        if row is None:
            raise _not_found(developer_id)
        return row

    async def delete(self, developer_id: int) -> None:
        result = await self.session.execute(delete(_table).where(DeveloperRow.id == developer_id))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise _not_found(developer_id)

    async def _write_one(self, statement: Executable, *, email: str | None) -> Developer | None:
        try:
            result = await self.session.execute(statement)
        except sa_exc.IntegrityError as exc:
            if violated_constraint(exc) == EMAIL_INDEX:
                raise DuplicateKeyError(f"a developer with email {email!r} already exists") from exc
            raise
        row = result.one_or_none()
        return None if row is None else Developer(*row)


def _not_found(developer_id: int) -> NotFoundError:
    return NotFoundError(f"developer {developer_id} does not exist")


async def provide_developers_service(db_session: NamedDependency[AsyncSession]) -> DevelopersService:
    return DevelopersService(db_session)
