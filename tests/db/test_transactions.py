"""The SQLAlchemy plugin's per-request transaction: committed on success, rolled back on any error answer."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from service.developers.schemas import DeveloperCreate
from service.developers.service import DevelopersService


class Boom(Exception):
    pass


@post("/test/write-then-fail/{how:str}")
async def write_then_fail(db_session: NamedDependency[AsyncSession], how: FromPath[str]) -> None:
    service = DevelopersService(db_session)
    await service.create(DeveloperCreate(name="Ghost", email="ghost@x.io", specialty="s"))
    await service.create(DeveloperCreate(name="Ghost 2", email="ghost2@x.io", specialty="s"))
    if how == "crash":
        raise Boom("unexpected failure after two writes")
    # A conflict after the writes: the domain error becomes a 409 and the earlier inserts must vanish too.
    await service.create(DeveloperCreate(name="Ghost 3", email="GHOST@x.io", specialty="s"))


@pytest.fixture
def app(app: Litestar) -> Litestar:
    app.register(write_then_fail)
    return app


@pytest.mark.parametrize(("how", "status"), [("crash", 500), ("conflict", 409)])
async def test_error_after_writes_leaves_nothing_written(client: httpx.AsyncClient, how: str, status: int) -> None:
    response = await client.post(f"/test/write-then-fail/{how}")
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "unexpected failure" not in response.text  # internals stay in the log
    assert (await client.get("/api/developers")).json()["items"] == []
    # The connection went back to the pool clean: the next request works and commits.
    ok = await client.post("/api/developers", json={"name": "Real", "email": "ghost@x.io", "specialty": "s"})
    assert ok.status_code == 201
    assert [d["name"] for d in (await client.get("/api/developers")).json()["items"]] == ["Real"]
