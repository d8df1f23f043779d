"""HTTP routes for bulk work on developers: import and bulk delete (the batch update is PATCH on the collection,
in service.developers.controller). Their body size limit, BULK_MAX_BYTES, comes from the router they are mounted
on (router.py). The import's body goes to the parsers as it streams in; what HTTP says about it (its Content-Type,
its size, how many imports stream at once) is decided here, with service.web.request_body.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import RequestBody
from litestar.params import JSONBody, Parameter

from service.accounts.guards import WRITE_DEVELOPERS
from service.core.errors import REPORTED
from service.developers.bulk.parsers import MEDIA_TYPES, parse
from service.developers.deps import BulkServiceDep, SettingsDep
from service.developers.formats import CSV, FORMAT_NAMES, JSON, NDJSON, documented
from service.developers.schemas import BulkCreateResult, BulkDelete, BulkDeleteResult, OnConflict
from service.web import request_body
from service.web.controller import Controller
from service.web.openapi import streamed
from service.web.problems import COMMON_RESPONSES, JSON_BODY_RESPONSES, problem_response
from service.web.request_body import STREAMED, TOO_LARGE
from service.web.routes import post


def import_responses(*accepted: str) -> dict[int, Any]:
    """The answers of an import route that takes bodies of the `accepted` media types."""
    return (
        COMMON_RESPONSES
        | STREAMED
        | {
            409: problem_response(
                "With on_conflict=error: emails that already exist or repeat within the body (compared "
                f"case-insensitively); `extra` lists the first {REPORTED} with the rows that carry them."
            ),
            415: problem_response(f"The Content-Type is not {' or '.join(accepted)} (in UTF-8)."),
        }
    )


def import_body(media_type: str) -> RequestBody:
    """An import's body in one format: each route documents one, so that a client generated from the document
    gets a method per format that sends it (openapi-python-client builds no working request for a body of several
    media types)."""
    streamed_rows = "" if media_type == JSON else " It is streamed: rows are written as they arrive."
    return RequestBody(
        required=True,
        description=(
            f"Developers to add, as {FORMAT_NAMES[media_type]}.{streamed_rows} A body that is not such rows is "
            "400, naming the row (and, for NDJSON and CSV, the line)."
        ),
        content=documented(media_type),
    )


OnConflictParameter = Annotated[
    OnConflict, Parameter(description="What an existing or repeated email does: error, skip or update.")
]
ON_CONFLICT = (
    "One transaction, written in chunks as the body arrives. `on_conflict` decides what an email that exists "
    "already (or repeats in the body) does: `error` rejects the whole request (409), `skip` keeps the existing "
    "developer (first row wins within the body), `update` gives the existing developer the row's name and "
    "specialty (last row wins)."
)


def import_route(name: str, path: str, accepted: tuple[str, ...], summary: str, description: str) -> HTTPRouteHandler:
    """A route that imports a body of one of the `accepted` media types (415 otherwise), parsed as it streams in;
    the document shows the first. `name` is its handler's, so its operation id (service.web.openapi)."""

    async def handler(
        self: Controller,
        request: Request[Any, Any, Any],
        bulk_service: BulkServiceDep,
        settings: SettingsDep,
        streamed_uploads: request_body.StreamedUploadsDep,
        on_conflict: OnConflictParameter = "error",
    ) -> BulkCreateResult:
        media_type = request_body.media_type(request, accepted)
        async with streamed_uploads.slot():
            rows = parse(media_type, request_body.pieces(request), settings.bulk_max_rows)
            return await bulk_service.import_rows(rows, on_conflict)

    handler.__name__ = handler.__qualname__ = name
    return post(
        path,
        summary=summary,
        description=description,
        operation_class=streamed(body=import_body(accepted[0])),
        guards=[WRITE_DEVELOPERS],
        responses=import_responses(*accepted),
    )(handler)


class DevelopersBulkController(Controller):
    path = "/api/developers"
    tags = ["developers"]

    import_developers = import_route(
        "import_developers",
        "/bulk",
        MEDIA_TYPES,
        summary="Add many developers from a JSON array, all or nothing",
        description=(
            f"{ON_CONFLICT}\n\nThe document shows the JSON array; this route takes NDJSON and CSV too, by their "
            "Content-Type, as `/api/developers/bulk.ndjson` and `/api/developers/bulk.csv` do (importDevelopersNdjson, "
            "importDevelopersCsv: one format each, so that a generated client has a method for each)."
        ),
    )
    import_developers_ndjson = import_route(
        "import_developers_ndjson",
        "/bulk.ndjson",
        (NDJSON,),
        summary="Add many developers from NDJSON, streamed, all or nothing",
        description=ON_CONFLICT,
    )
    import_developers_csv = import_route(
        "import_developers_csv",
        "/bulk.csv",
        (CSV,),
        summary="Add many developers from CSV, streamed, all or nothing",
        description=ON_CONFLICT,
    )

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
