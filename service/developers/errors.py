"""What can go wrong with developers, in the domain's words; service.web.problems answers each with its status."""

from __future__ import annotations

from typing import Any

from service.core.errors import (
    Conflict,
    DomainError,
    Gone,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    TooLarge,
)


class DeveloperNotFound(NotFound):
    def __init__(self, developer_id: int) -> None:
        super().__init__(f"developer {developer_id} does not exist")


class DevelopersNotFound(NotFound):
    """Ids that name no developer; `extra` lists them."""


class StaleDeveloper(PreconditionFailed):
    def __init__(self, developer_id: int, *, missing: bool = False) -> None:
        if missing:  # If-Match: * asks that it exist
            super().__init__(f"developer {developer_id} does not exist (If-Match: *); nothing was written")
        else:
            super().__init__(
                f"developer {developer_id} is not at a version If-Match names: it has changed since; nothing was "
                "written. GET it again and send its new ETag"
            )


class StaleDevelopers(PreconditionFailed):
    """Items of a batch whose `if_match` is not the developer's current ETag; `extra` lists their ids."""


class IfMatchRequired(PreconditionRequired):
    def __init__(self) -> None:
        super().__init__(
            "this server changes a developer only with If-Match (REQUIRE_IF_MATCH): GET it, then send its ETag"
        )


class EmailTaken(Conflict):
    """Another developer has this email (compared case-insensitively)."""

    def __init__(self, email: str) -> None:
        super().__init__(f"a developer with email {email!r} already exists")


class EmailsTaken(Conflict):
    """Emails already in the table or repeated in one request; `extra` names them with their rows."""


class InvalidRows(InvalidInput):
    """Rows of a bulk request that cannot be written; `extra` names each row and field."""

    @classmethod
    def one(cls, row: int, message: str, field: str | None = None, *, line: int | None = None) -> InvalidRows:
        problem: dict[str, Any] = {"row": row, "key": field, "source": "body", "message": message}
        if line is not None:
            problem["line"] = line
        where = f"row {row}" + (f", {field}" if field else "")
        return cls(f"{where}: {message}; nothing was written", [problem])


class TooManyRows(TooLarge):
    def __init__(self, max_rows: int) -> None:
        super().__init__(f"more than {max_rows} rows in one request; send them in parts")


class CursorExpired(Gone):
    def __init__(self) -> None:
        super().__init__(
            "events after this cursor are older than the feed keeps (EVENTS_RETENTION_HOURS); follow the feed from "
            "now (without a cursor), then list the developers again: a change made meanwhile is in one or the other"
        )


class ExportsBusy(DomainError):
    """As many exports as this process allows are running (503, with Retry-After like every 503)."""

    status = 503

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} exports are running on this server already (EXPORT_MAX_CONCURRENT); retry shortly")
