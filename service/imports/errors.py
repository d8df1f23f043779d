"""What can go wrong with import jobs, in the domain's words; service.web.problems answers each with its status."""

from __future__ import annotations

from service.core.errors import Conflict, NotFound


class ImportJobNotFound(NotFound):
    """No such job, or not one the caller may see (the same answer, so ids cannot be probed)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"import job {job_id} does not exist")


class ImportJobFinished(Conflict):
    def __init__(self, job_id: int, status: str) -> None:
        super().__init__(f"import job {job_id} has already finished ({status}); there is nothing to cancel")
