"""HTTP routes for bulk work on developers: import and bulk delete (the batch update is PATCH on the collection,
in service.developers.controller). Their body size limit, BULK_MAX_BYTES, comes from the router they are mounted
on (app.py). The import's body goes to the parsers as it streams in; what HTTP says about it (its Content-Type,
its size, a client gone mid-body) is decided here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, Reference, RequestBody, Schema
from litestar.params import JSONBody, Parameter

from service import request_body
from service.accounts.guards import WRITE_DEVELOPERS
from service.controller import Controller
from service.developers.bulk.parsers import CSV_HEADER, MEDIA_TYPES, parse
from service.developers.deps import BulkServiceDep, SettingsDep
from service.developers.schemas import BulkCreateResult, BulkDelete, BulkDeleteResult, OnConflict
from service.errors import REPORTED
from service.problems import COMMON_RESPONSES, JSON_BODY_RESPONSES, problem_response
from service.routes import post

TOO_LARGE = {413: problem_response("More rows than BULK_MAX_ROWS, or a body larger than BULK_MAX_BYTES.")}
IMPORT_RESPONSES = (
    COMMON_RESPONSES
    | TOO_LARGE
    | {
        409: problem_response(
            "With on_conflict=error: emails that already exist or repeat within the body (compared "
            f"case-insensitively); `extra` lists the first {REPORTED} with the rows that carry them."
        ),
        415: problem_response("The Content-Type is not one of application/json, application/x-ndjson, text/csv."),
    }
)


# The CSV body is described by its rows, as the NDJSON one is by its lines.
CSV_ROWS = (
    "RFC 4180 CSV in UTF-8: a header row naming name, email and specialty (in any order and case), then one "
    "developer a row, each field as DeveloperCreate has it. A body that is not such rows is 400, naming the row."
)


@dataclass
class ImportOperation(Operation):
    """The import route's OpenAPI operation: its body is streamed by the handler, so Litestar cannot infer it."""

    def __post_init__(self) -> None:
        row = Reference(ref="#/components/schemas/DeveloperCreate")
        example_csv = f"{','.join(CSV_HEADER)}\nAda Lovelace,ada@example.com,compilers\n"
        self.request_body = RequestBody(
            required=True,
            description="Developers to add, in one of three formats. NDJSON and CSV are streamed.",
            content={
                "application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.ARRAY, items=row)),
                "application/x-ndjson": OpenAPIMediaType(
                    schema=row, example='{"name": "Ada", "email": "ada@x.io", "specialty": "compilers"}'
                ),
                "text/csv": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.ARRAY, items=row, description=CSV_ROWS), example=example_csv
                ),
            },
        )


class DevelopersBulkController(Controller):
    path = "/api/developers"
    tags = ["developers"]

    @post(
        "/bulk",
        summary="Add many developers: a JSON array, NDJSON or CSV, all or nothing",
        description=(
            "One transaction, written by COPY as the body arrives. "
            "`on_conflict` decides what an email that exists already (or repeats in the body) does: `error` "
            "rejects the whole request (409), `skip` keeps the existing developer (first row wins within the "
            "body), `update` gives the existing developer the row's name and specialty (last row wins)."
        ),
        operation_class=ImportOperation,
        guards=[WRITE_DEVELOPERS],
        responses=IMPORT_RESPONSES,
    )
    async def import_developers(
        self,
        request: Request[Any, Any, Any],
        bulk_service: BulkServiceDep,
        settings: SettingsDep,
        on_conflict: Annotated[
            OnConflict, Parameter(description="What an existing or repeated email does: error, skip or update.")
        ] = "error",
    ) -> BulkCreateResult:
        media_type = request_body.media_type(request, MEDIA_TYPES)
        rows = parse(media_type, request_body.pieces(request), settings.bulk_max_rows)
        return await bulk_service.import_rows(rows, on_conflict)

    @post(
        "/bulk-delete",
        status_code=200,
        summary="Remove many developers by id",
        description="Ids that name no developer are listed in `not_found`; they are not an error.",
        guards=[WRITE_DEVELOPERS],
        responses=COMMON_RESPONSES | TOO_LARGE | JSON_BODY_RESPONSES,
    )
    async def delete_developers(self, bulk_service: BulkServiceDep, data: JSONBody[BulkDelete]) -> BulkDeleteResult:
        return await bulk_service.delete_many(data.ids)
