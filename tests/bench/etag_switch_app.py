"""The service, and beside it in the same process the same service without its ETag work on the two hot reads, so
that the conditional-request benchmark (tests/bench/etags.py) prices that work within one process.

    granian --interface asgi tests.bench.etag_switch_app:app     (DATABASE_URL and SECRET_KEY from the environment)

`GET /etags?on=1` (or `on=0`) switches which of the two apps answers; the answer says the state. Off, the hot
reads take the path they took before validators existed: no `If-None-Match` parameter, the one-developer SELECT
without its version, no page hash, no `ETag` header. Everything else (the observing layer, auth, the pool's
checkout) is the same code in both apps. Two processes of the same code differ here by up to 10% in requests/s for
as long as they live, more than what is measured, hence one process.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, cast

from litestar import Litestar
from litestar.enums import MediaType
from litestar.params import Parameter
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

import service.developers.router
from service.accounts.guards import READ_DEVELOPERS
from service.app import create_app
from service.core.limits import SPECIALTY_MAX
from service.core.validation import TEXT_PATTERN
from service.developers import controller, keyset, reads
from service.developers.controller import DevelopersController
from service.developers.deps import DeveloperReadsDep
from service.developers.errors import DeveloperNotFound
from service.web.routes import get

SWITCH = "/etags"
# The one-developer read as it was: the same JSON, without the version column.
_GET = reads._GET.replace(", d.version FROM", " FROM")
assert _GET != reads._GET


class PlainDevelopersController(DevelopersController):
    """The two hot reads as they were before validators: the rest is the service's controller."""

    @get(summary="List developers", guards=[READ_DEVELOPERS], responses=controller.COMMON_RESPONSES)
    async def list_developers(
        self,
        developer_reads: DeveloperReadsDep,
        specialty: Annotated[
            str | None, Parameter(min_length=1, max_length=SPECIALTY_MAX, pattern=TEXT_PATTERN)
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=100)] = 100,
        cursor: Annotated[
            str | None, Parameter(schema_extra={"pattern": keyset.PATTERN, "max_length": keyset.MAX_LENGTH})
        ] = None,
    ) -> ASGIResponse:
        body = await developer_reads.page(specialty=specialty, limit=limit, cursor=cursor)
        return ASGIResponse(body=body, media_type=MediaType.JSON)

    @get("/{developer_id:str}", summary="Get one developer", guards=[READ_DEVELOPERS], responses=controller.NOT_FOUND)
    async def get_developer(
        self, developer_reads: DeveloperReadsDep, developer_id: controller.DeveloperId
    ) -> ASGIResponse:
        rows = await developer_reads._fetch(_GET, developer_id)
        if not rows:
            raise DeveloperNotFound(developer_id)
        return ASGIResponse(body=cast(bytes, rows[0][0]), media_type=MediaType.JSON)


def _plain_app() -> Litestar:
    real = service.developers.router.DevelopersController
    service.developers.router.DevelopersController = PlainDevelopersController  # type: ignore[misc]
    try:
        return create_app()
    finally:
        service.developers.router.DevelopersController = real  # type: ignore[misc]


class Switch:
    """Both apps' lifespans, and each request to the one switched on."""

    def __init__(self, with_etags: Litestar, without: Litestar) -> None:
        self.apps = {True: with_etags, False: without}
        self.on = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"] == SWITCH:
            self.on = scope["query_string"] == b"on=1"
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"on" if self.on else b"off"})
        else:
            await self.apps[self.on](scope, receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        async with contextlib.AsyncExitStack() as stack:
            for app in self.apps.values():
                await stack.enter_async_context(app.lifespan())
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
        await send({"type": "lifespan.shutdown.complete"})


app: Any = Switch(create_app(), _plain_app())
