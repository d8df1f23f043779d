"""What the export route needs of an export, whichever server it streams from: PostgreSQL's COPY
(service.developers.export.service) or MariaDB's server-side cursor (service.developers.export.mariadb), chosen
once where the app is built."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncEngine

from service.db.consistency import NOTHING, Need

Format = Literal["csv", "ndjson"]
Sink = Callable[[bytes], Awaitable[None]]


class Stream(Protocol):
    """One export, inside its snapshot until `close`."""

    format: Format
    media_type: str
    rows: int
    aborted: bool

    async def copy_to(self, sink: Sink) -> int:
        """Give `sink` the body piece by piece, waiting for it before reading more; the rows sent."""
        ...

    def abort(self) -> None:
        """Cut the export short at once (its client has left): the connection is closed, never pooled."""

    async def close(self) -> None:
        """Give the connection back (committed if the stream ran to its end); once, whatever happened."""


@runtime_checkable  # Litestar checks a dependency's type with isinstance
class Exports(Protocol):
    """The exports of one process: how each starts, and how many run (EXPORT_MAX_CONCURRENT at most)."""

    max_concurrent: int
    running: int

    @property
    def engine(self) -> AsyncEngine:
        """The primary's engine: the pool an export streamed from the primary takes its connection from."""
        ...

    async def start(self, fmt: Format, specialty: str | None, need: Need = NOTHING) -> Stream: ...
