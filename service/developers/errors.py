"""Domain errors that name the rows or ids they concern; `extra` becomes the problem's `extra` member."""

from __future__ import annotations

from typing import Any

from advanced_alchemy.exceptions import DuplicateKeyError, NotFoundError


class EmailsTaken(DuplicateKeyError):
    """Emails already in the table or repeated in one request (409)."""

    def __init__(self, detail: str, extra: list[dict[str, Any]]) -> None:
        super().__init__(detail=detail)
        self.extra = extra


class DeveloperNotFound(NotFoundError):
    """No developer has this id (404)."""

    def __init__(self, developer_id: int) -> None:
        super().__init__(detail=f"developer {developer_id} does not exist")


class DevelopersNotFound(NotFoundError):
    """Ids that name no developer (404)."""

    def __init__(self, detail: str, extra: list[dict[str, Any]]) -> None:
        super().__init__(detail=detail)
        self.extra = extra
