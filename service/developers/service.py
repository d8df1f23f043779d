"""Single-row writes for developers, over the request's session; no HTTP here. (The hot reads are in reads.py.)

Why not advanced-alchemy's SQLAlchemyAsyncRepositoryService: it loads ORM instances into the identity map and
reads back after writes. Each write here is one Core statement whose columns go straight into a msgspec Struct
(RETURNING gives a write its row in the same round trip).

Every write answers the row's new `version` (the ETag's, service.developers.etags), and each UPDATE increments it.
A write with an `If-Match` checks it in its one statement (`... WHERE id = :id AND version IN (...)`), under the
row lock the UPDATE or DELETE takes, so no other write can come between the check and the write: only when that
statement finds no row does a second one ask whether the developer exists (412, or 404). SQLAlchemy's
`version_id_col` would do the same for ORM flushes only, and these writes are Core statements.

Round trips of a write, counted at the wire (tests/developers/test_round_trips.py): 3, BEGIN, the statement and
COMMIT (one more when a conditional write finds no row). On MariaDB, 2 for a create or delete (a transaction begins
with its first statement, no BEGIN sent) and 3 for an update, which has no RETURNING there (service.db.returning). The
transaction is the request's, in the SQLAlchemy plugin's session: it commits before a 2xx answer leaves and rolls
back on any error (service.web.transaction), and later writes of the request join it. Each write begins it at its
declared level (service.db.isolation: READ COMMITTED, and why that is enough: an UPDATE's row lock, and under it the
version it reads is the latest).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, cast

from sqlalchemy import ColumnElement, Executable, Row, Table, Update, bindparam, delete, exists, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import isolation
from service.db.errors import violated_constraint
from service.db.models import DEVELOPERS_EMAIL_INDEX
from service.db.models import Developer as DeveloperRow
from service.db.returning import UpdateOne, update_returning
from service.developers.errors import DeveloperNotFound, EmailTaken, StaleDeveloper
from service.developers.etags import ANY_VERSION, Versions
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

_RETURNED = (*DEVELOPER_COLUMNS, DeveloperRow.version)
_GET = select(*DEVELOPER_COLUMNS, DeveloperRow.version).where(DeveloperRow.id == bindparam("id"))
_EXISTS = select(exists().where(DeveloperRow.id == bindparam("id")))


class Versioned(NamedTuple):
    """A developer as a write left it, and its version (the ETag's)."""

    developer: Developer
    version: int


class DevelopersService:
    def __init__(self, session: AsyncSession, update_one: UpdateOne = update_returning) -> None:
        # UPDATE ... RETURNING, or the UPDATE and a SELECT where the server has no RETURNING for it (MariaDB).
        self.session = session
        self.update_one = update_one

    async def get(self, developer_id: int, if_match: Versions | None = None) -> Versioned:
        """One developer, in the request's transaction (a PATCH that changes nothing answers with it), if its
        version is one `if_match` accepts."""
        row = (await self.session.execute(_GET, {"id": developer_id})).one_or_none()
        if row is None:
            raise _missing(developer_id, if_match)
        versioned = _versioned(row)
        if isinstance(if_match, frozenset) and versioned.version not in if_match:
            raise StaleDeveloper(developer_id)
        return versioned

    async def create(self, data: DeveloperCreate) -> Versioned:
        await isolation.begin(self.session, "developers.create")
        statement = (
            insert(_table)
            .values(name=data.name, email=data.email, specialty=data.specialty)
            .returning(*DEVELOPER_COLUMNS, DeveloperRow.version)
        )
        row = await self._write_one(statement, email=data.email)
        assert row is not None  # INSERT ... RETURNING always returns its row
        return row

    async def update(self, developer_id: int, data: DeveloperUpdate, if_match: Versions | None = None) -> Versioned:
        """Change the fields `data` gives, if the developer's version is one `if_match` accepts (None: any)."""
        await isolation.begin(self.session, "developers.update")
        changes = data.changes()
        if not changes:
            return await self.get(developer_id, if_match)
        statement = (
            update(_table)
            .where(*_matching(developer_id, if_match))
            .values(**changes, version=DeveloperRow.version + 1)  # and updated_at, by the model's onupdate
        )
        row = await self._updated(statement, developer_id, email=changes.get("email"))
        if row is None:
            raise await self._unwritten(developer_id, if_match)
        return row

    async def delete(self, developer_id: int, if_match: Versions | None = None) -> None:
        await isolation.begin(self.session, "developers.delete")
        result = await self.session.execute(delete(_table).where(*_matching(developer_id, if_match)))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise await self._unwritten(developer_id, if_match)

    async def _unwritten(self, developer_id: int, if_match: Versions | None) -> Exception:
        """Why a write of one developer found no row: none has this id (404; 412 for `If-Match: *`, which asks
        that one exist), or its version is not one `if_match` accepts (412)."""
        if isinstance(if_match, frozenset) and (await self.session.execute(_EXISTS, {"id": developer_id})).scalar():
            return StaleDeveloper(developer_id)
        return _missing(developer_id, if_match)

    async def _write_one(self, statement: Executable, *, email: str | None) -> Versioned | None:
        with _email_taken(email):
            row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else _versioned(row)

    async def _updated(self, statement: Update, developer_id: int, *, email: str | None) -> Versioned | None:
        with _email_taken(email):
            row = await self.update_one(self.session, statement, _RETURNED, DeveloperRow.id == developer_id)
        return None if row is None else _versioned(row)


@contextmanager
def _email_taken(email: str | None) -> Iterator[None]:
    """A write that breaks the unique index on lower(email) as EmailTaken (409)."""
    try:
        yield
    except sa_exc.IntegrityError as exc:
        if violated_constraint(exc) == DEVELOPERS_EMAIL_INDEX:
            raise EmailTaken(email or "") from exc
        raise


def _missing(developer_id: int, if_match: Versions | None) -> Exception:
    """No developer has this id: 404, as without If-Match, except for `If-Match: *`, which asks that one exist."""
    return StaleDeveloper(developer_id, missing=True) if if_match == ANY_VERSION else DeveloperNotFound(developer_id)


def _matching(developer_id: int, if_match: Versions | None) -> list[ColumnElement[bool]]:
    """The WHERE of a write of one developer: its id, and one of the versions `if_match` accepts, if it names any."""
    where = [DeveloperRow.id == developer_id]
    if isinstance(if_match, frozenset):
        where.append(DeveloperRow.version.in_(sorted(if_match)))
    return where


def _versioned(row: Row[*tuple[Any, ...]]) -> Versioned:
    *fields, version = row
    return Versioned(Developer(*fields), version)
