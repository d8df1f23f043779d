"""The lines the log writer writes, captured as JSON objects for as long as the block runs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from service.observability.log_format import JSONFormatter
from service.observability.log_writer import writer


class Lines:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def all(self) -> list[dict[str, Any]]:
        """Every line written so far (waits for the writer's current batch)."""
        writer.flush()
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def text(self) -> str:
        writer.flush()
        return self.stream.getvalue()

    def of(self, rid: str) -> dict[str, Any]:
        """The one request line of the request with id `rid`."""
        (line,) = [line for line in self.requests() if line["request_id"] == rid]
        return line

    def requests(self) -> list[dict[str, Any]]:
        return [line for line in self.all() if line["logger"] == "service.requests"]


@contextmanager
def captured(formatter: logging.Formatter | None = None) -> Iterator[Lines]:
    """Every line the writer writes, into memory instead of stderr, in `formatter`'s format (JSON unless told),
    whatever format the app set."""
    writer.flush()
    stream, previous = writer.stream, writer.formatter
    buffer = io.StringIO()
    writer.stream, writer.formatter = buffer, formatter or JSONFormatter()
    try:
        yield Lines(buffer)
    finally:
        writer.flush()
        writer.stream, writer.formatter = stream, previous
