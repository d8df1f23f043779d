"""The imports domain's dependencies: the jobs service over the request's session, and the caller as a viewer."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.auth import Principal
from service.imports.jobs import ImportJobs


def provide_import_jobs(db_session: NamedDependency[AsyncSession]) -> ImportJobs:
    return ImportJobs(db_session)


def provide_viewer(request: Request[Principal, Any, Any]) -> int | None:
    return request.user.sees_owner


DEPENDENCIES = {
    "import_jobs": Provide(provide_import_jobs, sync_to_thread=False),
    "viewer": Provide(provide_viewer, sync_to_thread=False),
}

ImportJobsDep = NamedDependency[ImportJobs]
ViewerDep = NamedDependency[int | None]
