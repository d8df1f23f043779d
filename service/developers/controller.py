"""HTTP routes for developers: parameters, bodies, status codes. Queries live in the services.

The controller is mounted on a router whose body size limit is BULK_MAX_BYTES (router.py), for the batch update;
the single-row routes cap their bodies far lower, as one developer is well under a kilobyte.

Conditional requests (service.developers.etags): the reads, the create and the PATCH answer an `ETag`; the reads
answer 304 to a matching `If-None-Match`; a PATCH or DELETE with `If-Match` writes only the version it names (412),
and with REQUIRE_IF_MATCH on, one without `If-Match` is refused (428).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, Parameter
from litestar.response.base import ASGIResponse

from service.accounts.guards import READ_DEVELOPERS, WRITE_DEVELOPERS
from service.core.errors import REPORTED
from service.core.limits import SPECIALTY_MAX
from service.core.validation import TEXT_PATTERN
from service.developers import keyset
from service.developers.deps import BulkServiceDep, DeveloperReadsDep, DevelopersServiceDep, SettingsDep
from service.developers.errors import IfMatchRequired
from service.developers.etags import Versions, developer_etag, if_match_versions, page_etag
from service.developers.schemas import (
    BatchUpdateResult,
    Developer,
    DeveloperBatchUpdate,
    DeveloperCreate,
    DeveloperPage,
    DeveloperUpdate,
)
from service.web.conditional import ConditionalReadOperation, ValidatedOperation, if_none_match, json_answer
from service.web.controller import Controller
from service.web.path_ids import PathId
from service.web.problems import COMMON_RESPONSES, JSON_BODY_RESPONSES, problem_response
from service.web.routes import delete, get, patch, post

DeveloperId = Annotated[PathId, Parameter(description="The developer's id.")]
IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description=(
            "The ETag the client last read (or `*`: the developer exists): 412 and nothing written if it is no "
            "longer current (strong comparison). Required when the server sets REQUIRE_IF_MATCH."
        ),
    ),
]
NOT_MODIFIED = {304: ResponseSpec(None, description="`If-None-Match` matches: the client's copy is current.")}
PRECONDITIONS = {
    412: problem_response("`If-Match` names no current version of the developer (or `*`, and it does not exist)."),
    428: problem_response("No `If-Match`, and this server requires one (REQUIRE_IF_MATCH)."),
}

NOT_FOUND = COMMON_RESPONSES | {404: problem_response("No developer has this id.")}
ONE_BODY_MAX = 64 * 1024
UPDATE_MANY = COMMON_RESPONSES | {
    404: problem_response(f"Ids that name no developer; `extra` lists the first {REPORTED}."),
    409: problem_response("A new email belongs to another developer, or two items set the same email."),
    412: problem_response("Items whose `if_match` is not the developer's current ETag; `extra` lists their ids."),
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
        | NOT_MODIFIED
        | {200: ResponseSpec(DeveloperPage, description="One page of developers.", generate_examples=False)},
        operation_class=ConditionalReadOperation,
    )
    async def list_developers(
        self,
        request: Request[Any, Any, Any],
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
        body = await developer_reads.page(specialty=specialty, limit=limit, cursor=cursor)
        return json_answer(body, page_etag(body), if_none_match(request.scope))

    @get(
        "/{developer_id:str}",
        summary="Get one developer",
        guards=[READ_DEVELOPERS],
        responses=NOT_FOUND
        | NOT_MODIFIED
        | {200: ResponseSpec(Developer, description="The developer.", generate_examples=False)},
        operation_class=ConditionalReadOperation,
    )
    async def get_developer(
        self, request: Request[Any, Any, Any], developer_reads: DeveloperReadsDep, developer_id: DeveloperId
    ) -> ASGIResponse:
        body, version = await developer_reads.one(developer_id)
        return json_answer(body, developer_etag(developer_id, version), if_none_match(request.scope))

    @post(
        summary="Add a developer",
        guards=[WRITE_DEVELOPERS],
        responses=CONFLICT,
        request_max_body_size=ONE_BODY_MAX,
        operation_class=ValidatedOperation,
    )
    async def create_developer(
        self, developers_service: DevelopersServiceDep, data: JSONBody[DeveloperCreate]
    ) -> Response[Developer]:
        developer, version = await developers_service.create(data)
        return Response(developer, status_code=201, headers={"ETag": developer_etag(developer.id, version)})

    @patch(
        "/{developer_id:str}",
        summary="Change any of name, email, specialty",
        guards=[WRITE_DEVELOPERS],
        responses=NOT_FOUND | CONFLICT | PRECONDITIONS,
        request_max_body_size=ONE_BODY_MAX,
        operation_class=ValidatedOperation,
    )
    async def update_developer(
        self,
        developers_service: DevelopersServiceDep,
        settings: SettingsDep,
        developer_id: DeveloperId,
        data: JSONBody[DeveloperUpdate],
        if_match: IfMatch = None,
    ) -> Response[Developer]:
        versions = _versions(if_match, developer_id, required=settings.require_if_match)
        developer, version = await developers_service.update(developer_id, data, versions)
        return Response(developer, headers={"ETag": developer_etag(developer_id, version)})

    @delete(
        "/{developer_id:str}",
        summary="Remove a developer",
        guards=[WRITE_DEVELOPERS],
        responses=NOT_FOUND | PRECONDITIONS,
    )
    async def delete_developer(
        self,
        developers_service: DevelopersServiceDep,
        settings: SettingsDep,
        developer_id: DeveloperId,
        if_match: IfMatch = None,
    ) -> None:
        versions = _versions(if_match, developer_id, required=settings.require_if_match)
        await developers_service.delete(developer_id, versions)

    @patch(
        summary="Change many developers in one statement, all or nothing",
        guards=[WRITE_DEVELOPERS],
        description=(
            "Each item is an id, any of name, email, specialty, and optionally `if_match`, the developer's ETag as "
            "read: one `UPDATE ... FROM` writes them all, or nothing if any item's developer has changed since (412)."
        ),
        responses=UPDATE_MANY,
    )
    async def update_developers(
        self, bulk_service: BulkServiceDep, data: JSONBody[list[DeveloperBatchUpdate]]
    ) -> BatchUpdateResult:
        return await bulk_service.update_many(data)


def _versions(if_match: str | None, developer_id: int, *, required: bool) -> Versions | None:
    """What `If-Match` accepts of the developer (None: no header, any version), or 428 when it is required."""
    if if_match is None:
        if required:
            raise IfMatchRequired
        return None
    return if_match_versions(if_match, developer_id)
