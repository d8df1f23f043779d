"""The imports domain's dependencies: the jobs service over the request's session (PostgreSQL's or MariaDB's,
chosen once from DATABASE_URL), and the caller as a viewer."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from typing import Any, Protocol, runtime_checkable

from litestar import Request
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.auth import Principal
from service.core.settings import Settings
from service.developers.schemas import OnConflict
from service.imports.jobs import ImportJobs
from service.imports.mariadb.jobs import MariaDBImportJobs
from service.imports.schemas import ImportJob, ImportJobPage


@runtime_checkable  # Litestar checks a dependency's type with isinstance
class JobsService(Protocol):
    """The routes' side of import jobs, in one session: what ImportJobs (PostgreSQL) and MariaDBImportJobs do."""

    async def submit(
        self, media_type: str, on_conflict: OnConflict, submitted_by: int, body: AsyncIterable[bytes]
    ) -> ImportJob: ...

    async def get(self, job_id: int, viewer: int | None) -> ImportJob: ...

    async def list(self, viewer: int | None, before: int | None, limit: int) -> ImportJobPage: ...

    async def cancel(self, job_id: int, viewer: int | None) -> ImportJob: ...


JobsOf = Callable[[AsyncSession], JobsService]


def provide_viewer(request: Request[Principal, Any, Any]) -> int | None:
    return request.user.sees_owner


def dependencies(settings: Settings) -> dict[str, Provide]:
    jobs_of: JobsOf = MariaDBImportJobs if settings.backend == "mariadb" else ImportJobs

    def provide_import_jobs(db_session: NamedDependency[AsyncSession]) -> JobsService:
        return jobs_of(db_session)

    def provide_jobs_of() -> JobsOf:
        return jobs_of

    return {
        "import_jobs": Provide(provide_import_jobs, sync_to_thread=False),
        "jobs_of": Provide(provide_jobs_of, use_cache=True, sync_to_thread=False),
        "viewer": Provide(provide_viewer, sync_to_thread=False),
    }


ImportJobsDep = NamedDependency[JobsService]
JobsOfDep = NamedDependency[JobsOf]
ViewerDep = NamedDependency[int | None]
