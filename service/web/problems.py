"""Every error answer as an RFC 9457 problem: the mapping from exceptions to `application/problem+json`.

Litestar's ProblemDetailsPlugin renders HTTP exceptions; this module adds what it cannot know: domain errors
from the services (service.core.errors.DomainError, each with its own status), and database trouble, which is the
server's state rather than the client's mistake: pool starvation and an unreachable database are 503 with
Retry-After, never a hang and never a 500.

Every conversion then clears the locals of the finished frames in the exception's traceback (and its cause's and
context's): something may outlive the request and keep the exception. SQLAlchemy's SessionTransaction.rollback
keeps its own error in a reference cycle, chained to the request's when the rollback fails while that is answered
(a backend killed mid-import), and its frames would keep an import's rows, megabytes per 503, until a full
collection.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, cast

import asyncpg
import msgspec
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsException
from sqlalchemy import exc as sa_exc

from service.core.errors import DomainError
from service.core.validation import named_field, readable
from service.db.errors import driver_error, is_conflict, is_statement_timeout
from service.observability.log_throttle import LogThrottle
from service.observability.metrics import ErrorKind, Metrics

logger = logging.getLogger("service.problems")
UNAVAILABLE_LOG_INTERVAL = 10.0  # seconds between two log lines about the same kind of 503

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details, as every error answer carries them (documentation of the body)."""

    status: int
    title: str
    detail: str | None = None
    type: str | None = None
    extra: list[dict[str, Any]] | None = None


def problem_response(description: str) -> ResponseSpec:
    """An error answer for a route's OpenAPI `responses`."""
    # No generated examples: Litestar would invent random ones (a `status` of 9361) for the shared schema.
    return ResponseSpec(
        data_container=Problem, description=description, media_type=PROBLEM_MEDIA_TYPE, generate_examples=False
    )


# Every /api route can answer these.
COMMON_RESPONSES = {
    400: problem_response("Invalid parameters or body; `extra` names each field and what is wrong with it."),
    401: problem_response(
        "No bearer token, or one that is invalid, expired or signed with another key (`WWW-Authenticate: Bearer`)."
    ),
    403: problem_response("The token is valid but its scopes do not allow this route."),
    503: problem_response(
        "No database connection came free within DB_POOL_TIMEOUT, or the database is down; "
        "retry after the `Retry-After` seconds."
    ),
}

# Every route with a JSON body can answer this too (service.web.json_body).
JSON_BODY_RESPONSES = {
    415: problem_response(
        "The body is not `application/json` (UTF-8); `Accept-Post` or `Accept-Patch` names the type to send."
    )
}


def _http(exc: HTTPException) -> ProblemDetailsException:
    # Litestar's own conversion puts the specific message in `title`; RFC 9457 wants the status's short,
    # fixed title there and the specific message in `detail`.
    if exc.status_code == 500:
        # Litestar's own 500s (an ImproperlyConfiguredException, a missing dependency) carry internal messages:
        # they go to the log, never to the client.
        return _internal(exc)
    title = HTTPStatus(exc.status_code).phrase
    extra = exc.extra
    if isinstance(extra, list) and isinstance(exc.__cause__, msgspec.ValidationError):
        extra = [_readable(item) for item in _locate(extra, str(exc.__cause__))]
    return ProblemDetailsException(
        status_code=exc.status_code, title=title, detail=exc.detail, extra=extra, headers=_headers(exc)
    )


def _headers(exc: HTTPException) -> dict[str, str] | None:
    headers = dict(exc.headers or {})
    if exc.status_code == 401:  # RFC 6750: tell the client which scheme to use
        headers["WWW-Authenticate"] = "Bearer"
    if exc.status_code == 429 and (reset := headers.get("RateLimit-Reset")):
        headers["Retry-After"] = reset  # Litestar's rate limiter sends the RateLimit-* draft headers only
    return headers or None


# msgspec names where a body failed ("... - at `$.data[3].email`"); Litestar keeps only the field of an object
# body, so for a list body the item is put back here, numbered from 1 like the bulk routes' rows.
_ITEM_PATH = re.compile(r" - at `\$\.data\[(\d+)\](?:\.(\w+))?")


def _locate(extra: list[Any], error: str) -> list[Any]:
    if len(extra) != 1 or not isinstance(extra[0], dict) or not (match := _ITEM_PATH.search(error)):
        return extra
    located = {**extra[0], "row": int(match[1]) + 1}
    if match[2]:
        located["key"] = match[2]
    return [located]


def _readable(item: Any) -> Any:
    if not isinstance(item, dict) or not isinstance(message := item.get("message"), str):
        return item
    key = item.get("key")
    # An unknown or missing field is named in the message, not in the path (which ends at the object).
    if key in {None, "data"}:
        key = named_field(message) or key
    return {**item, "key": key, "message": readable(message)}


def _domain(exc: DomainError, retry_after: int | None = None) -> ProblemDetailsException:
    # A domain error answered 503 (a limit of this server's, such as concurrent exports) says when to retry, as
    # every 503 does.
    headers = {"Retry-After": str(retry_after)} if exc.status == 503 and retry_after is not None else None
    return ProblemDetailsException(
        status_code=exc.status, title=HTTPStatus(exc.status).phrase, detail=exc.detail, extra=exc.extra, headers=headers
    )


def _unavailable(retry_after: int, metrics: Metrics | None) -> Callable[[Exception], ProblemDetailsException]:
    headers = {"Retry-After": str(retry_after)}
    # An outage fails every request alike: the first 503 of a kind is logged at once, then one line per interval.
    throttle = LogThrottle(UNAVAILABLE_LOG_INTERVAL)

    def convert(exc: Exception) -> ProblemDetailsException:
        if isinstance(exc, sa_exc.TimeoutError):
            detail = "All database connections are busy; retry shortly."
            if metrics is not None:
                metrics.pool_timeouts.inc()
        elif (because := _unavailable_because(exc)) is None:
            return _internal(exc)
        else:
            kind, detail = because
            if metrics is not None:
                metrics.database_errors.labels(kind).inc()
        held_back = throttle.admit(detail)
        if held_back == 0:
            logger.warning("503: %s (%s)", detail, type(exc).__name__)
        elif held_back is not None:
            logger.warning(
                "503: %s (%s); %d more not logged since the last such line", detail, type(exc).__name__, held_back
            )
        return ProblemDetailsException(status_code=503, title="Service Unavailable", detail=detail, headers=headers)

    return convert


def _unavailable_because(exc: Exception) -> tuple[ErrorKind, str] | None:
    """What kind of trouble kept the database from serving this request now, and why in words; None if the error
    is not about availability."""
    driver = driver_error(exc)
    if isinstance(driver, asyncpg.QueryCanceledError) or is_statement_timeout(exc):
        return "statement_timeout", (
            "The database took longer than the statement timeout; retry shortly, or send less at once."
        )
    # A deadlock or a serialization failure; on MariaDB a row lock waited on for innodb_lock_wait_timeout too.
    if isinstance(driver, asyncpg.TransactionRollbackError) or is_conflict(exc):
        return "conflict", "The request collided with a concurrent transaction; retry it."
    # Refused or timed-out connects surface as OSError (TimeoutError is one); a lost connection, a server
    # shutting down or refusing connections as asyncpg connection, operator or resource errors. A connection
    # terminated in the middle of a COPY can leave asyncpg's protocol stuck ("another operation is in progress"):
    # an InternalClientError, which the transaction's end then discards with the connection.
    unavailable = (
        OSError,
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        asyncpg.InterfaceError,
        asyncpg.PostgresConnectionError,
        asyncpg.exceptions.OperatorInterventionError,
        asyncpg.exceptions.InsufficientResourcesError,
        asyncpg.InternalClientError,
    )
    if (
        isinstance(exc, unavailable)
        or isinstance(driver, unavailable)
        or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated)
    ):
        return "connection", "The database is unavailable; retry shortly."
    return None


def _internal(exc: Exception) -> ProblemDetailsException:
    # Logged with its traceback here because Litestar logs unhandled exceptions only in debug mode.
    logger.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return ProblemDetailsException(status_code=500, title="Internal Server Error")


def problem_for(config: ProblemDetailsConfig) -> Callable[[Exception], ProblemDetailsException]:
    """The problem `config` makes of an exception raised outside a handler (a failed COMMIT), exactly as if the
    handler had raised it: the mapping of the nearest class in its MRO."""
    mapping = config.exception_to_problem_detail_map

    def convert(exc: Exception) -> ProblemDetailsException:
        for cls in type(exc).__mro__:
            if (to_problem := mapping.get(cls)) is not None:
                return cast(ProblemDetailsException, to_problem(exc))
        return _internal(exc)

    return convert


def problem_details_config(retry_after_seconds: int, metrics: Metrics | None = None) -> ProblemDetailsConfig:
    """The mapping of every exception to its problem; with `metrics`, the 503s about the database are counted."""
    unavailable = _unavailable(retry_after_seconds, metrics)
    mapping: Mapping[type[Exception], Callable[[Any], ProblemDetailsException]] = {
        HTTPException: _http,
        DomainError: lambda exc: _domain(exc, retry_after_seconds),
        sa_exc.SQLAlchemyError: unavailable,
        sa_exc.EmulatedDBAPIException: unavailable,  # a connect refused under engine.raw_connection()
        asyncpg.PostgresError: unavailable,
        asyncpg.InterfaceError: unavailable,
        asyncpg.InternalClientError: unavailable,
        OSError: unavailable,
        Exception: _internal,
    }
    released = {cls: _then_release_frames(convert) for cls, convert in mapping.items()}
    return ProblemDetailsConfig(exception_to_problem_detail_map=released)


def _then_release_frames(convert: Callable[[Any], ProblemDetailsException]) -> Callable[[Any], ProblemDetailsException]:
    def answer(exc: Exception) -> ProblemDetailsException:
        try:
            return convert(exc)
        finally:
            _release_frames(exc)

    return answer


def _release_frames(exc: BaseException) -> None:
    # Frames still running are left alone; a traceback formatted later (a log line) needs no locals.
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while pending:
        if (error := pending.pop()) is not None and id(error) not in seen:
            seen.add(id(error))
            traceback.clear_frames(error.__traceback__)
            pending += (error.__cause__, error.__context__)
