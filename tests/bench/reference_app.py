"""The reference: the same two reads as plain Litestar handlers over an asyncpg pool, no ORM, no plugin.

It is what the service is measured against in the same run: one round trip per request (pool.acquire, one
prepared statement), rows straight into msgspec Structs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import msgspec
from litestar import Litestar, get
from litestar.exceptions import NotFoundException

# The same response Struct as the service, so both sides pay the same serialisation.
from service.developers.schemas import Developer

COLUMNS = "id, name, email, specialty, created_at, updated_at"


class Page(msgspec.Struct):
    items: list[Developer]


@asynccontextmanager
async def pool(app: Litestar) -> AsyncIterator[None]:
    url = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    app.state.pool = await asyncpg.create_pool(url, min_size=20, max_size=30)
    try:
        yield
    finally:
        await app.state.pool.close()


@get("/ref/developers")
async def list_developers(specialty: str, limit: int = 100) -> Page:
    rows = await app.state.pool.fetch(
        f"SELECT {COLUMNS} FROM developers WHERE specialty = $1 ORDER BY name, id LIMIT $2", specialty, limit
    )
    return Page([Developer(*row) for row in rows])


@get("/ref/developers/{developer_id:int}")
async def get_developer(developer_id: int) -> Developer:
    row = await app.state.pool.fetchrow(f"SELECT {COLUMNS} FROM developers WHERE id = $1", developer_id)
    if row is None:
        raise NotFoundException()
    return Developer(*row)


app = Litestar([list_developers, get_developer], lifespan=[pool], openapi_config=None)
