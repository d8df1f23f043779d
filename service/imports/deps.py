"""The imports domain's dependencies: the jobs service over the request's session, and the caller as a viewer."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.auth import Principal
from service.imports.jobs import ImportJobs

ADMIN_SCOPE = "users:admin"


def provide_import_jobs(db_session: NamedDependency[AsyncSession]) -> ImportJobs:
    return ImportJobs(db_session)


def viewer_of(principal: Principal) -> int | None:
    """Whose jobs `principal` may see: its own (its account id), or every job (None) for an admin. The one rule
    for the jobs routes and for the change feed's `import.*` events."""
    return None if ADMIN_SCOPE in principal.scopes else principal.id


def provide_viewer(request: Request[Any, Principal, Any]) -> int | None:
    return viewer_of(request.user)


DEPENDENCIES = {
    "import_jobs": Provide(provide_import_jobs, sync_to_thread=False),
    "viewer": Provide(provide_viewer, sync_to_thread=False),
}

ImportJobsDep = NamedDependency[ImportJobs]
ViewerDep = NamedDependency[int | None]
