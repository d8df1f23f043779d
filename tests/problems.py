"""An exception as the service answers it: the problem that its exception-to-problem mapping makes of it."""

from __future__ import annotations

from litestar.plugins.problem_details import ProblemDetailsException

from service.web.problems import problem_details_config


def convert(exc: Exception) -> ProblemDetailsException:
    mapping = problem_details_config(retry_after_seconds=2).exception_to_problem_detail_map
    handler = next(mapping[cls] for cls in type(exc).__mro__ if cls in mapping)
    return handler(exc)
