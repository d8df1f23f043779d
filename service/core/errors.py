"""The one base of every domain error: what went wrong, the HTTP status it answers with, and the items concerned.

Services raise these without knowing HTTP; service.web.problems turns any of them into an RFC 9457 problem with its
`status`, its `detail`, and `extra` as the problem's `extra` member. Each domain names its own small subclasses
(service.developers.errors, service.accounts.errors).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar

# How many items (rows, emails, ids) an error lists in `extra` at most; the detail gives the full count.
REPORTED = 20


class DomainError(Exception):
    status: ClassVar[int] = 400

    def __init__(self, detail: str, extra: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem a route answers this error with, as a dict (a background import's `error`)."""
        body: dict[str, Any] = {"status": self.status, "title": HTTPStatus(self.status).phrase, "detail": self.detail}
        if self.extra:
            body["extra"] = self.extra
        return body


class InvalidInput(DomainError):
    """The request names something the service cannot accept; `extra` says where (400)."""

    status = 400


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    """The request contradicts what is stored, or itself (409)."""

    status = 409


class TooLarge(DomainError):
    status = 413


class Gone(DomainError):
    """What the request names existed once and is no longer kept (410)."""

    status = 410


class PreconditionFailed(DomainError):
    """A condition of the request (`If-Match`) is false for what is stored now; nothing was written (412)."""

    status = 412


class PreconditionRequired(DomainError):
    """The request would change something without saying which version it saw (`If-Match`) (428)."""

    status = 428
