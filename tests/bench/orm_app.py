"""The ORM reference for the bulk benchmark: the same HTTP shape as POST /api/developers/bulk (JSON array in,
counts out), written the way a plain ORM service would write it: one model instance per row, `add_all`, flush.

It runs on the service's own plugin configuration (same pool, same session settings, same commit handler), so
the only difference measured is the write path.
"""

from __future__ import annotations

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from service.core.settings import Settings
from service.db.config import sqlalchemy_config
from service.db.models import Developer
from service.developers.schemas import BulkCreateResult, DeveloperCreate


@post("/orm/developers/bulk", request_max_body_size=None)
async def import_with_orm(
    db_session: NamedDependency[AsyncSession], data: JSONBody[list[DeveloperCreate]]
) -> BulkCreateResult:
    db_session.add_all([Developer(name=d.name, email=d.email, specialty=d.specialty) for d in data])
    await db_session.flush()
    return BulkCreateResult(created=len(data), updated=0, skipped=0)


app = Litestar(
    [import_with_orm],
    plugins=[SQLAlchemyPlugin(config=sqlalchemy_config(Settings.from_env()))],
    openapi_config=None,
)
