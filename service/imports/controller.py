"""HTTP routes of background imports: submit (202, the job), read, list and cancel jobs.

Submitting stores the body as it arrives and answers before any row is read: the rows are parsed and validated
by the worker, and a bad one fails the job with the problem `POST /api/developers/bulk` would have answered
(its `error`). So a submission costs the upload and nothing else, and never parses a body twice. What HTTP says
about the body (its Content-Type: 415, its size: 413, uploads at once: 503; a stalled or trickling upload, 408,
and one cut short, 400, under every route) is answered as for the bulk route.

A job is visible to its submitter and to admins only; anyone else gets 404, as for a job that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, RequestBody, Schema
from litestar.params import Parameter

from service.accounts.auth import Principal
from service.accounts.guards import READ_DEVELOPERS, WRITE_DEVELOPERS
from service.core.validation import ID_PATTERN
from service.developers.bulk.parsers import MEDIA_TYPES
from service.developers.formats import CSV, FORMAT_NAMES, JSON, NDJSON
from service.developers.schemas import OnConflict
from service.imports.deps import ImportJobsDep, JobsOfDep, ViewerDep
from service.imports.schemas import ImportJob, ImportJobPage
from service.web import request_body
from service.web.consistency import SessionReadsDep
from service.web.controller import Controller
from service.web.openapi import streamed
from service.web.path_ids import PathId
from service.web.problems import COMMON_RESPONSES, problem_response
from service.web.request_body import STREAMED
from service.web.routes import delete, get, post

JobId = Annotated[PathId, Parameter(description="The job's id.")]
NOT_FOUND = {404: problem_response("No such job, or not one of yours (admins see every job).")}


# The body as it is checked at submit, streamed into storage: any bytes of its media type. The rows are read later,
# by the worker, against the bulk import's rules (DeveloperCreate per row). One media type a route, as for the bulk
# import (service.developers.bulk.controller.import_body).
_RAW = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format="binary"))  # type: ignore[arg-type]
_ANY_JSON = OpenAPIMediaType(schema=Schema(description="Any JSON here; an array of rows for the worker."))


def submit_body(media_type: str) -> RequestBody:
    return RequestBody(
        required=True,
        description=(
            f"Developers to add, as {FORMAT_NAMES[media_type]}, as for the bulk import. Stored as sent; a bad row "
            "fails the job, not the submission."
        ),
        content={media_type: _ANY_JSON if media_type == JSON else _RAW},
    )


def submit_responses(*accepted: str) -> dict[int, Any]:
    return (
        COMMON_RESPONSES
        | STREAMED
        | {
            202: ResponseSpec(ImportJob, description="Queued; `Location` is the job's URL.", generate_examples=False),
            415: problem_response(f"The Content-Type is not {' or '.join(accepted)} (in UTF-8)."),
        }
    )


OnConflictParameter = Annotated[
    OnConflict, Parameter(description="What an existing or repeated email does: error, skip or update.")
]
QUEUED = (
    "The body is stored and the job queued in one transaction; a worker imports it later as "
    "`POST /api/developers/bulk` would, with the same `on_conflict`. Poll `Location` (or follow the "
    "change feed's `import.*` events) for its status and progress. Rows are validated by the worker: a bad "
    "row fails the job, whose `error` is the problem the bulk route would answer, and nothing is written."
)


def submit_route(name: str, path: str, accepted: tuple[str, ...], summary: str, description: str) -> HTTPRouteHandler:
    """A route that queues the import of a body of one of the `accepted` media types (415 otherwise), stored as it
    streams in; the document shows the first. `name` is its handler's, so its operation id (service.web.openapi)."""

    async def handler(
        self: Controller,
        request: Request[Any, Principal, Any],
        import_jobs: ImportJobsDep,
        streamed_uploads: request_body.StreamedUploadsDep,
        on_conflict: OnConflictParameter = "error",
    ) -> Response[ImportJob]:
        media_type = request_body.media_type(request, accepted)
        async with streamed_uploads.slot():
            job = await import_jobs.submit(media_type, on_conflict, request.user.id, request_body.pieces(request))
        return Response(job, status_code=202, headers={"Location": f"/api/imports/{job.id}"})

    handler.__name__ = handler.__qualname__ = name
    return post(
        path,
        status_code=202,
        summary=summary,
        description=description,
        operation_class=streamed(body=submit_body(accepted[0])),
        guards=[WRITE_DEVELOPERS],
        responses=submit_responses(*accepted),
    )(handler)


class ImportSubmitController(Controller):
    path = "/api/developers"
    tags = ["imports"]

    submit_import = submit_route(
        "submit_import",
        "/imports",
        MEDIA_TYPES,
        summary="Import many developers in the background from a JSON array, all or nothing",
        description=(
            f"{QUEUED}\n\nThe document shows the JSON array; this route takes NDJSON and CSV too, by their "
            "Content-Type, as `/api/developers/imports.ndjson` and `/api/developers/imports.csv` do "
            "(submitImportNdjson, submitImportCsv: one format each, so that a generated client has a method for each)."
        ),
    )
    submit_import_ndjson = submit_route(
        "submit_import_ndjson",
        "/imports.ndjson",
        (NDJSON,),
        summary="Import many developers in the background from NDJSON, all or nothing",
        description=QUEUED,
    )
    submit_import_csv = submit_route(
        "submit_import_csv",
        "/imports.csv",
        (CSV,),
        summary="Import many developers in the background from CSV, all or nothing",
        description=QUEUED,
    )


class ImportsController(Controller):
    path = "/api/imports"
    tags = ["imports"]

    @get(
        summary="List import jobs, newest first (yours; every job for admins)",
        guards=[READ_DEVELOPERS],
        responses=COMMON_RESPONSES,
    )
    async def list_imports(
        self,
        session_reads: SessionReadsDep,
        jobs_of: JobsOfDep,
        viewer: ViewerDep,
        limit: Annotated[int, Parameter(ge=1, le=100, description="Page size.")] = 100,
        cursor: Annotated[
            str | None,
            Parameter(
                pattern=ID_PATTERN,
                description="`next_cursor` of the previous page (a job's id: the page holds older jobs); omit for "
                "the first page.",
            ),
        ] = None,
    ) -> ImportJobPage:
        before = None if cursor is None else int(cursor)
        # Reads that may run on a hot standby, seeing at least the caller's own writes (service.db.routing).
        return await session_reads.run(lambda session: jobs_of(session).list(viewer, before, limit))

    @get("/{job_id:str}", summary="Get an import job", guards=[READ_DEVELOPERS], responses=COMMON_RESPONSES | NOT_FOUND)
    async def get_import(
        self, session_reads: SessionReadsDep, jobs_of: JobsOfDep, viewer: ViewerDep, job_id: JobId
    ) -> ImportJob:
        return await session_reads.run(lambda session: jobs_of(session).get(job_id, viewer))

    @delete(
        "/{job_id:str}",
        status_code=200,
        summary="Cancel an import job",
        description=(
            "A queued job is cancelled at once (`status: cancelled`). A running one is asked to stop: the answer "
            "is still `running` with `cancel_requested: true`, and the job ends `cancelled` at its next chunk of "
            "rows, with nothing written (or `succeeded`, if it had already committed). A finished job is 409."
        ),
        guards=[WRITE_DEVELOPERS],
        responses=COMMON_RESPONSES
        | NOT_FOUND
        | {409: problem_response("The job has already finished (succeeded, failed or cancelled).")},
    )
    async def cancel_import(self, import_jobs: ImportJobsDep, viewer: ViewerDep, job_id: JobId) -> ImportJob:
        return await import_jobs.cancel(job_id, viewer)
