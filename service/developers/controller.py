"""HTTP routes for developers: parameters, bodies, status codes. Queries live in the services.

The controller is mounted on a router whose body size limit is BULK_MAX_BYTES (router.py), for the batch update;
the single-row routes cap their bodies far lower, as one developer is well under a kilobyte.
"""

from __future__ import annotations

from typing import Annotated

from litestar.enums import MediaType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, Parameter
from litestar.response.base import ASGIResponse

from service.accounts.guards import READ_DEVELOPERS, WRITE_DEVELOPERS
from service.core.errors import REPORTED
from service.core.limits import SPECIALTY_MAX
from service.core.validation import TEXT_PATTERN
from service.developers import keyset
from service.developers.deps import BulkServiceDep, DeveloperReadsDep, DevelopersServiceDep
from service.developers.schemas import (
    BatchUpdateResult,
    Developer,
    DeveloperBatchUpdate,
    DeveloperCreate,
    DeveloperPage,
    DeveloperUpdate,
)
from service.web.controller import Controller
from service.web.path_ids import PathId
from service.web.problems import COMMON_RESPONSES, JSON_BODY_RESPONSES, problem_response
from service.web.routes import delete, get, patch, post

DeveloperId = Annotated[PathId, Parameter(description="The developer's id.")]

NOT_FOUND = COMMON_RESPONSES | {404: problem_response("No developer has this id.")}
ONE_BODY_MAX = 64 * 1024
UPDATE_MANY = COMMON_RESPONSES | {
    404: problem_response(f"Ids that name no developer; `extra` lists the first {REPORTED}."),
    409: problem_response("A new email belongs to another developer, or two items set the same email."),
    413: problem_response("More items than BULK_MAX_ROWS, or a body larger than BULK_MAX_BYTES."),
}
CONFLICT = COMMON_RESPONSES | {
    409: problem_response("Another developer already has this email (compared case-insensitively).")
}
# The routes that use these two take a JSON body, so they answer 415 to any other Content-Type.
UPDATE_MANY |= JSON_BODY_RESPONSES
CONFLICT |= JSON_BODY_RESPONSES


class DevelopersController(Controller):
    path = "/api/developers"
    tags = ["developers"]

    @get(
        summary="List developers, by name, one keyset page at a time",
        guards=[READ_DEVELOPERS],
        responses=COMMON_RESPONSES
        | {200: ResponseSpec(DeveloperPage, description="One page of developers.", generate_examples=False)},
    )
    async def list_developers(
        self,
        developer_reads: DeveloperReadsDep,
        specialty: Annotated[
            str | None,
            Parameter(min_length=1, max_length=SPECIALTY_MAX, pattern=TEXT_PATTERN, description="Only this specialty."),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=100, description="Page size.")] = 100,
        cursor: Annotated[
            str | None,
            Parameter(
                # Checked by keyset.decode, whose 400 says what a cursor is rather than quote the pattern.
                schema_extra={"pattern": keyset.PATTERN, "max_length": keyset.MAX_LENGTH},
                description="`next_cursor` of the previous page; omit for the first page.",
            ),
        ] = None,
    ) -> ASGIResponse:
        return json_bytes_answer(await developer_reads.page(specialty=specialty, limit=limit, cursor=cursor))

    @get(
        "/{developer_id:str}",
        summary="Get one developer",
        guards=[READ_DEVELOPERS],
        responses=NOT_FOUND | {200: ResponseSpec(Developer, description="The developer.", generate_examples=False)},
    )
    async def get_developer(self, developer_reads: DeveloperReadsDep, developer_id: DeveloperId) -> ASGIResponse:
        return json_bytes_answer(await developer_reads.one(developer_id))

    @post(summary="Add a developer", guards=[WRITE_DEVELOPERS], responses=CONFLICT, request_max_body_size=ONE_BODY_MAX)
    async def create_developer(
        self, developers_service: DevelopersServiceDep, data: JSONBody[DeveloperCreate]
    ) -> Developer:
        return await developers_service.create(data)

    @patch(
        "/{developer_id:str}",
        summary="Change any of name, email, specialty",
        guards=[WRITE_DEVELOPERS],
        responses=NOT_FOUND | CONFLICT,
        request_max_body_size=ONE_BODY_MAX,
    )
    async def update_developer(
        self, developers_service: DevelopersServiceDep, developer_id: DeveloperId, data: JSONBody[DeveloperUpdate]
    ) -> Developer:
        return await developers_service.update(developer_id, data)

    @delete("/{developer_id:str}", summary="Remove a developer", guards=[WRITE_DEVELOPERS], responses=NOT_FOUND)
    async def delete_developer(self, developers_service: DevelopersServiceDep, developer_id: DeveloperId) -> None:
        await developers_service.delete(developer_id)

    @patch(
        summary="Change many developers in one statement, all or nothing",
        guards=[WRITE_DEVELOPERS],
        description="Each item is an id and any of name, email, specialty; one `UPDATE ... FROM` writes them all.",
        responses=UPDATE_MANY,
    )
    async def update_developers(
        self, bulk_service: BulkServiceDep, data: JSONBody[list[DeveloperBatchUpdate]]
    ) -> BatchUpdateResult:
        return await bulk_service.update_many(data)


def json_bytes_answer(body: bytes) -> ASGIResponse:
    """An answer whose body is JSON already (service.developers.reads), as Litestar's ASGI response: the bytes go
    out as they are, without the Response object Litestar would otherwise build and convert for them (about a
    tenth of a hot read's time in the service). The route's `responses` document the body's type."""
    return ASGIResponse(body=body, media_type=MediaType.JSON)
