"""The ORM reference of the MariaDB bulk benchmark: the seed's write pattern behind the bulk route's HTTP shape
(a JSON array in, counts out): one model instance per row, `add_all`, commit, in one session of a plain async
engine on DATABASE_URL (asyncmy, the service's driver). Nothing of the service's write path is used.
"""

from __future__ import annotations

import os

from litestar import Litestar, post
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from service.db.mariadb import async_url
from service.db.models import Developer
from service.developers.schemas import BulkCreateResult, DeveloperCreate

engine = create_async_engine(async_url(os.environ["DATABASE_URL"]), pool_size=5, connect_args={"charset": "utf8mb4"})
sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@post("/orm/developers/bulk", request_max_body_size=None)
async def import_with_orm(data: JSONBody[list[DeveloperCreate]]) -> BulkCreateResult:
    async with sessions() as session:
        session.add_all([Developer(name=d.name, email=d.email, specialty=d.specialty) for d in data])
        await session.commit()
    return BulkCreateResult(created=len(data), updated=0, skipped=0)


app = Litestar([import_with_orm], openapi_config=None, on_shutdown=[engine.dispose])
