"""HTTP routes for developers: parameters, bodies, status codes. Queries live in the service."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ValidationException
from litestar.params import JSONBody, Parameter

from service.db.models import SPECIALTY_MAX
from service.developers import keyset
from service.developers.schemas import TEXT_PATTERN, Developer, DeveloperCreate, DeveloperPage, DeveloperUpdate
from service.developers.service import DevelopersService, provide_developers_service
from service.problems import COMMON_RESPONSES, problem_response

DevelopersServiceDep = NamedDependency[DevelopersService]
MAX_BIGINT = 2**63 - 1
DeveloperId = Annotated[int, Parameter(ge=1, le=MAX_BIGINT, description="The developer's id.")]

NOT_FOUND = COMMON_RESPONSES | {404: problem_response("No developer has this id.")}
CONFLICT = COMMON_RESPONSES | {
    409: problem_response("Another developer already has this email (compared case-insensitively).")
}


class DevelopersController(Controller):
    path = "/api/developers"
    tags = ["developers"]
    dependencies = {"developers_service": Provide(provide_developers_service)}

    @get(summary="List developers, by name, one keyset page at a time", responses=COMMON_RESPONSES)
    async def list_developers(
        self,
        developers_service: DevelopersServiceDep,
        specialty: Annotated[
            str | None,
            Parameter(min_length=1, max_length=SPECIALTY_MAX, pattern=TEXT_PATTERN, description="Only this specialty."),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=100, description="Page size.")] = 100,
        cursor: Annotated[
            str | None, Parameter(description="`next_cursor` of the previous page; omit for the first page.")
        ] = None,
    ) -> DeveloperPage:
        after = None
        if cursor is not None:
            try:
                after = keyset.decode(cursor)
            except keyset.InvalidCursor as exc:
                raise ValidationException(
                    detail="Validation failed", extra=[{"key": "cursor", "source": "query", "message": str(exc)}]
                ) from exc
        return await developers_service.list(specialty=specialty, limit=limit, after=after)

    @get("/{developer_id:int}", summary="Get one developer", responses=NOT_FOUND)
    async def get_developer(self, developers_service: DevelopersServiceDep, developer_id: DeveloperId) -> Developer:
        return await developers_service.get(developer_id)

    @post(summary="Add a developer", responses=CONFLICT)
    async def create_developer(
        self, developers_service: DevelopersServiceDep, data: JSONBody[DeveloperCreate]
    ) -> Developer:
        return await developers_service.create(data)

    @patch("/{developer_id:int}", summary="Change any of name, email, specialty", responses=NOT_FOUND | CONFLICT)
    async def update_developer(
        self, developers_service: DevelopersServiceDep, developer_id: DeveloperId, data: JSONBody[DeveloperUpdate]
    ) -> Developer:
        return await developers_service.update(developer_id, data)

    @delete("/{developer_id:int}", summary="Remove a developer", responses=NOT_FOUND)
    async def delete_developer(self, developers_service: DevelopersServiceDep, developer_id: DeveloperId) -> None:
        await developers_service.delete(developer_id)
