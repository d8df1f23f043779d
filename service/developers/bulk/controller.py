"""HTTP routes for bulk work on developers: import and bulk delete (the batch update is PATCH on the collection,
in service.developers.controller). Their body size limit, BULK_MAX_BYTES, comes from the router they are mounted
on (router.py). The import's body goes to the parsers as it streams in; what HTTP says about it (its Content-Type,
its size, how many imports stream at once) is decided here, with service.web.request_body.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.openapi.spec import RequestBody
from litestar.params import JSONBody, Parameter

from service.accounts.guards import WRITE_DEVELOPERS
from service.core.errors import REPORTED
from service.developers.bulk.parsers import MEDIA_TYPES, parse
from service.developers.deps import BulkServiceDep, SettingsDep
from service.developers.formats import documented
from service.developers.schemas import BulkCreateResult, BulkDelete, BulkDeleteResult, OnConflict
from service.web import request_body
from service.web.controller import Controller
from service.web.openapi import streamed
from service.web.problems import COMMON_RESPONSES, JSON_BODY_RESPONSES, problem_response
from service.web.request_body import STREAMED, TOO_LARGE
from service.web.routes import post

IMPORT_RESPONSES = (
    COMMON_RESPONSES
    | STREAMED
    | {
        409: problem_response(
            "With on_conflict=error: emails that already exist or repeat within the body (compared "
            f"case-insensitively); `extra` lists the first {REPORTED} with the rows that carry them."
        ),
        415: problem_response("The Content-Type is not one of application/json, application/x-ndjson, text/csv."),
    }
)


# The body is streamed by the handler, so Litestar cannot infer it.
IMPORT_BODY = RequestBody(
    required=True,
    description=(
        "Developers to add, in one of three formats. NDJSON and CSV are streamed; a body that is not such rows "
        "is 400, naming the row (and, for NDJSON and CSV, the line)."
    ),
    content=documented(*MEDIA_TYPES),
)


class DevelopersBulkController(Controller):
    path = "/api/developers"
    tags = ["developers"]

    @post(
        "/bulk",
        summary="Add many developers: a JSON array, NDJSON or CSV, all or nothing",
        description=(
            "One transaction, written in chunks as the body arrives. "
            "`on_conflict` decides what an email that exists already (or repeats in the body) does: `error` "
            "rejects the whole request (409), `skip` keeps the existing developer (first row wins within the "
            "body), `update` gives the existing developer the row's name and specialty (last row wins)."
        ),
        operation_class=streamed(body=IMPORT_BODY),
        guards=[WRITE_DEVELOPERS],
        responses=IMPORT_RESPONSES,
    )
    async def import_developers(
        self,
        request: Request[Any, Any, Any],
        bulk_service: BulkServiceDep,
        settings: SettingsDep,
        streamed_uploads: request_body.StreamedUploadsDep,
        on_conflict: Annotated[
            OnConflict, Parameter(description="What an existing or repeated email does: error, skip or update.")
        ] = "error",
    ) -> BulkCreateResult:
        media_type = request_body.media_type(request, MEDIA_TYPES)
        async with streamed_uploads.slot():
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
