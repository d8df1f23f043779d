"""Every error answer as an RFC 9457 problem: the mapping from exceptions to `application/problem+json`.

Litestar's ProblemDetailsPlugin renders HTTP exceptions; this module adds what it cannot know: domain errors
from the services (404, 409), and database trouble, which is the server's state rather than the client's
mistake: pool starvation and an unreachable database are 503 with Retry-After, never a hang and never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from advanced_alchemy.exceptions import DuplicateKeyError, NotFoundError
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsException
from sqlalchemy import exc as sa_exc

logger = logging.getLogger("service.problems")

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
    return ResponseSpec(data_container=Problem, description=description, media_type=PROBLEM_MEDIA_TYPE)


# Every route that reads the database or a body can answer these.
COMMON_RESPONSES = {
    400: problem_response("Invalid parameters or body; `extra` names each field and what is wrong with it."),
    503: problem_response(
        "No database connection came free within DB_POOL_TIMEOUT, or the database is down; "
        "retry after the `Retry-After` seconds."
    ),
}


def _not_found(exc: NotFoundError) -> ProblemDetailsException:
    return ProblemDetailsException(status_code=404, title="Not Found", detail=exc.detail)


def _conflict(exc: DuplicateKeyError) -> ProblemDetailsException:
    return ProblemDetailsException(status_code=409, title="Conflict", detail=exc.detail)


def _unavailable(retry_after: int) -> Callable[[Exception], ProblemDetailsException]:
    headers = {"Retry-After": str(retry_after)}

    def convert(exc: Exception) -> ProblemDetailsException:
        if isinstance(exc, sa_exc.TimeoutError):
            detail = "All database connections are busy; retry shortly."
        elif _is_unavailable(exc):
            detail = "The database is unavailable; retry shortly."
        else:
            return _internal(exc)
        logger.warning("503: %s (%s)", detail, type(exc).__name__)
        return ProblemDetailsException(status_code=503, title="Service Unavailable", detail=detail, headers=headers)

    return convert


def _is_unavailable(exc: Exception) -> bool:
    # Refused or timed-out connects surface as OSError (TimeoutError is one); a lost connection, a server
    # shutting down or a statement_timeout surface as DBAPI operational/interface errors.
    if isinstance(exc, OSError | sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated


def _internal(exc: Exception) -> ProblemDetailsException:
    # Logged with its traceback here because Litestar logs unhandled exceptions only in debug mode.
    logger.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return ProblemDetailsException(status_code=500, title="Internal Server Error")


def problem_details_config(retry_after_seconds: int) -> ProblemDetailsConfig:
    unavailable = _unavailable(retry_after_seconds)
    mapping: Mapping[type[Exception], Callable[[Any], ProblemDetailsException]] = {
        NotFoundError: _not_found,
        DuplicateKeyError: _conflict,
        sa_exc.SQLAlchemyError: unavailable,
        OSError: unavailable,
        Exception: _internal,
    }
    return ProblemDetailsConfig(enable_for_all_http_exceptions=True, exception_to_problem_detail_map=mapping)
