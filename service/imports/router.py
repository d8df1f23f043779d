"""The background imports' routes: submit (its body may reach BULK_MAX_BYTES, as the bulk import's), read, list and
cancel jobs, with their dependencies."""

from __future__ import annotations

from litestar import Router

from service.core.settings import Settings
from service.imports import deps
from service.imports.controller import ImportsController, ImportSubmitController


def router(settings: Settings) -> Router:
    return Router(
        "/",
        route_handlers=[ImportSubmitController, ImportsController],
        dependencies=deps.dependencies(settings),
        request_max_body_size=settings.bulk_max_bytes,
    )
