"""What the imports routes answer: a job, and a page of jobs."""

from __future__ import annotations

from typing import Any

import msgspec

from service.core.validation import Timestamp
from service.developers.events.schemas import ImportJobSummary


class ImportJob(ImportJobSummary, frozen=True):
    """A background import. `rows_done` grows while it runs; `rows_total` and the counts are set when it succeeds.
    `error` is the RFC 9457 problem `POST /api/developers/bulk` would have answered for the same body (a bad
    row is 400 naming it, a taken email 409, ...). `cancel_requested`: a DELETE asked for it to stop; a running
    job then ends `cancelled` at its next chunk of rows, or `succeeded` if it had already committed."""

    error: dict[str, Any] | None
    cancel_requested: bool
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None


class ImportJobPage(msgspec.Struct, frozen=True):
    """Jobs, newest first; pass `next_cursor` as `cursor` for the next page (null: this was the last)."""

    items: list[ImportJob]
    next_cursor: str | None
