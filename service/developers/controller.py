"""HTTP routes for developers: parameters, bodies, status codes. Queries live in the services.

The controller is mounted on a router whose body size limit is BULK_MAX_BYTES (app.py), for the batch update;
the single-row routes cap their bodies far lower, as one developer is well under a kilobyte.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar.di import NamedDependency, Provide
from litestar.enums import MediaType
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, Parameter
from litestar.response.base import ASGIResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from service.accounts.guards import READ_DEVELOPERS, WRITE_DEVELOPERS
from service.controller import Controller
from service.db.models import SPECIALTY_MAX
from service.developers import keyset
from service.developers.bulk import DevelopersBulkService, provide_bulk_service
from service.developers.bulk_input import too_many_rows
from service.developers.reads import DeveloperReads
from service.developers.schemas import (
    TEXT_PATTERN,
    BatchUpdateResult,
    Developer,
    DeveloperBatchUpdate,
    DeveloperCreate,
    DeveloperPage,
    DeveloperUpdate,
)
from service.developers.service import DevelopersService, provide_developers_service
from service.problems import COMMON_RESPONSES, JSON_BODY_RESPONSES, problem_response
from service.routes import delete, get, patch, post
from service.settings import Settings
from service.validation import nfc

DevelopersServiceDep = NamedDependency[DevelopersService]
DeveloperReadsDep = NamedDependency[DeveloperReads]
BulkServiceDep = NamedDependency[DevelopersBulkService]
SettingsDep = NamedDependency[Settings]
MAX_BIGINT = 2**63 - 1
DeveloperId = Annotated[int, Parameter(ge=1, le=MAX_BIGINT, description="The developer's id.")]

NOT_FOUND = COMMON_RESPONSES | {404: problem_response("No developer has this id.")}
ONE_BODY_MAX = 64 * 1024
UPDATE_MANY = COMMON_RESPONSES | {
    404: problem_response("Ids that name no developer; `extra` lists the first 20."),
    409: problem_response("A new email belongs to another developer, or two items set the same email."),
    413: problem_response("More items than BULK_MAX_ROWS, or a body larger than BULK_MAX_BYTES."),
}
CONFLICT = COMMON_RESPONSES | {
    409: problem_response("Another developer already has this email (compared case-insensitively).")
}
# The routes that use these two take a JSON body, so they answer 415 to any other Content-Type.
UPDATE_MANY |= JSON_BODY_RESPONSES
CONFLICT |= JSON_BODY_RESPONSES


def provide_developer_reads(db_engine: NamedDependency[AsyncEngine]) -> DeveloperReads:
    return DeveloperReads(db_engine)


class DevelopersController(Controller):
    path = "/api/developers"
    tags = ["developers"]
    dependencies = {
        "developer_reads": Provide(provide_developer_reads, sync_to_thread=False),
        "developers_service": Provide(provide_developers_service),
        "bulk_service": Provide(provide_bulk_service),
    }

    @get(
        summary="List developers, by name, one keyset page at a time",
        guards=[READ_DEVELOPERS],
        responses=COMMON_RESPONSES | {200: ResponseSpec(DeveloperPage, description="One page of developers.")},
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
                min_length=1,
                max_length=keyset.MAX_LENGTH,
                pattern=keyset.PATTERN,
                description="`next_cursor` of the previous page; omit for the first page.",
            ),
        ] = None,
    ) -> ASGIResponse:
        after = None
        if cursor is not None:
            try:
                after = keyset.decode(cursor)
            except keyset.InvalidCursor as exc:
                raise ValidationException(
                    detail="Validation failed", extra=[{"key": "cursor", "source": "query", "message": str(exc)}]
                ) from exc
        # Specialties are stored in NFC: so is the one asked for.
        page = await developer_reads.page(specialty=specialty and nfc(specialty), limit=limit, after=after)
        return json_bytes_answer(page)

    @get(
        "/{developer_id:int}",
        summary="Get one developer",
        guards=[READ_DEVELOPERS],
        responses=NOT_FOUND | {200: ResponseSpec(Developer, description="The developer.")},
    )
    async def get_developer(self, developer_reads: DeveloperReadsDep, developer_id: DeveloperId) -> ASGIResponse:
        return json_bytes_answer(await developer_reads.one(developer_id))

    @post(summary="Add a developer", guards=[WRITE_DEVELOPERS], responses=CONFLICT, request_max_body_size=ONE_BODY_MAX)
    async def create_developer(
        self, developers_service: DevelopersServiceDep, data: JSONBody[DeveloperCreate]
    ) -> Developer:
        return await developers_service.create(data)

    @patch(
        "/{developer_id:int}",
        summary="Change any of name, email, specialty",
        guards=[WRITE_DEVELOPERS],
        responses=NOT_FOUND | CONFLICT,
        request_max_body_size=ONE_BODY_MAX,
    )
    async def update_developer(
        self, developers_service: DevelopersServiceDep, developer_id: DeveloperId, data: JSONBody[DeveloperUpdate]
    ) -> Developer:
        return await developers_service.update(developer_id, data)

    @delete("/{developer_id:int}", summary="Remove a developer", guards=[WRITE_DEVELOPERS], responses=NOT_FOUND)
    async def delete_developer(self, developers_service: DevelopersServiceDep, developer_id: DeveloperId) -> None:
        await developers_service.delete(developer_id)

    @patch(
        summary="Change many developers in one statement, all or nothing",
        guards=[WRITE_DEVELOPERS],
        description="Each item is an id and any of name, email, specialty; one `UPDATE ... FROM` writes them all.",
        responses=UPDATE_MANY,
    )
    async def update_developers(
        self, bulk_service: BulkServiceDep, settings: SettingsDep, data: JSONBody[list[DeveloperBatchUpdate]]
    ) -> BatchUpdateResult:
        if len(data) > settings.bulk_max_rows:
            raise too_many_rows(settings.bulk_max_rows)
        problems: list[dict[str, Any]] = []
        seen: set[int] = set()
        for row, item in enumerate(data, 1):
            if item.id in seen:
                problems.append(_item_problem(row, "id", f"id {item.id} appears more than once"))
            elif not item.changes():
                problems.append(_item_problem(row, None, "no field to change: give name, email or specialty"))
            seen.add(item.id)
        if problems:
            raise ValidationException(detail="invalid items; nothing was written", extra=problems[:20])
        return await bulk_service.update_many(data)


def _item_problem(row: int, field: str | None, message: str) -> dict[str, Any]:
    return {"row": row, "key": field, "source": "body", "message": message}


def json_bytes_answer(body: bytes) -> ASGIResponse:
    """An answer whose body is JSON already (service.developers.reads), as Litestar's ASGI response: the bytes go
    out as they are, without the Response object Litestar would otherwise build and convert for them (about a
    tenth of a hot read's time in the service). The route's `responses` document the body's type."""
    return ASGIResponse(body=body, media_type=MediaType.JSON)
