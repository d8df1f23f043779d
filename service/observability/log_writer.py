"""The thread that writes every log line of this process, and Litestar's logging setup in front of it.

Every line is formatted and written by one thread of this process (`writer`), a batch every WRITE_INTERVAL
seconds, never by the event loop, so a slow log reader never blocks a request: the loop pays for one append. The
designs this replaced, and what each cost the hot read: docs/decisions/0001-request-log-writer-thread.md. The
logger's level still decides: `service.requests` above INFO writes no lines.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from typing import Any, TextIO

from litestar.logging.config import LoggingConfig

from service.observability.log_format import ConsoleFormatter, JSONFormatter, LogFormat, RequestLine
from service.observability.request_ids import RequestIdFilter

# Seconds between the writer's batches: what a line may wait before it reaches stderr (flush() writes at once).
WRITE_INTERVAL = 1.0
# Lines that may wait for a stderr that does not keep up; beyond them lines are dropped, and the count of those
# dropped is written once stderr takes lines again. Memory stays bounded whoever reads the log, however slowly.
MAX_PENDING = 100_000


class LineWriter:
    """Formats and writes this process's log lines to `stream` (stderr by default) in a thread of its own, a batch
    every WRITE_INTERVAL seconds (see the module's docstring). `put` only appends to a deque, which is safe across
    threads without a lock; the thread starts with the first line, in each process (a forked child starts its own).
    """

    def __init__(self) -> None:
        self.stream: TextIO | None = None  # None: sys.stderr as it is when the batch is written
        self.formatter: logging.Formatter = ConsoleFormatter()  # the configured handler's, once configured
        self._lines: deque[logging.LogRecord | tuple[Any, ...] | threading.Event] = deque()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()
        self._wake = threading.Event()  # set by flush(): write now, not at the end of the interval
        self.dropped = 0

    def put(self, line: logging.LogRecord | tuple[Any, ...]) -> None:
        """Queue a line, to be formatted and written by the writer's thread: a record, or a request line as a
        RequestLine or a plain tuple of its fields (a NamedTuple costs a Python call to make, and the layer hands
        one line per request, on the event loop)."""
        if len(self._lines) >= MAX_PENDING:
            self.dropped += 1
            return
        self._lines.append(line)
        if self._thread is None:
            self._start()

    @property
    def pending(self) -> bool:
        return bool(self._lines)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every line put so far is written."""
        written = threading.Event()
        self._lines.append(written)
        if self._thread is None:
            self._start()
        self._wake.set()
        written.wait(timeout)

    def forked(self) -> None:
        """In a forked child: the parent's thread is not here, and its lines are the parent's to write."""
        self._lines.clear()
        self._thread = None
        self._starting = threading.Lock()
        self._wake = threading.Event()

    def _start(self) -> None:
        with self._starting:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="log writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(WRITE_INTERVAL)
            self._wake.clear()
            self._write()

    def _write(self) -> None:
        lines, text, flushed = self._lines, [], []
        formatter = self.formatter
        # Ours format a request line straight from the tuple; any other formatter gets the record it expects.
        format_request = getattr(formatter, "format_request", None) or (lambda line: formatter.format(line.record()))
        for _ in range(len(lines)):
            line = lines.popleft()
            try:
                if isinstance(line, tuple):  # a request line: a RequestLine, or a tuple of its fields
                    text.append(format_request(line if isinstance(line, RequestLine) else RequestLine._make(line)))
                elif isinstance(line, threading.Event):
                    flushed.append(line)
                else:
                    text.append(formatter.format(line))
            except Exception:  # noqa: BLE001  (one line that cannot be formatted never takes the others down)
                message = f"log line not written: {type(line).__name__} ({sys.exc_info()[1]!r})"
                text.append(
                    logging.Formatter().format(logging.LogRecord(__name__, logging.ERROR, "", 0, message, (), None))
                )
        if dropped := self.dropped:
            self.dropped -= dropped  # lines dropped meanwhile are reported by the next batch
            message = f"{dropped} log lines dropped: stderr did not take them fast enough"
            text.append(formatter.format(logging.LogRecord(__name__, logging.WARNING, __file__, 0, message, (), None)))
        if text:
            try:
                stream = self.stream or sys.stderr
                stream.write("\n".join(text) + "\n")
                stream.flush()
            except Exception:  # noqa: BLE001, S110  (there is nowhere left to report it)
                pass
        for event in flushed:
            event.set()


writer = LineWriter()
os.register_at_fork(after_in_child=writer.forked)


class BackgroundWriter(logging.Handler):
    """The logging handler in front of `writer`: the caller pays for the record, the filters and an append."""

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        super().setFormatter(fmt)
        if fmt is not None:
            writer.formatter = fmt  # request lines take the same format as every other line

    def emit(self, record: logging.LogRecord) -> None:
        writer.put(record)

    def flush(self) -> None:
        if writer.pending:
            writer.flush()

    def close(self) -> None:
        # logging.shutdown at exit, or a later logging setup replacing this one: write what is queued first.
        self.flush()
        super().close()


def logging_config(log_format: LogFormat) -> LoggingConfig:
    """Litestar's logging setup (root and `litestar` loggers through its `queue_listener` handler), that handler
    being ours, with our formatter and the request id filter."""
    formatter = JSONFormatter if log_format == "json" else ConsoleFormatter
    return LoggingConfig(
        formatters={"standard": {"()": formatter}},
        filters={"request_id": {"()": RequestIdFilter}},
        handlers={
            "queue_listener": {
                "class": f"{__name__}.BackgroundWriter",
                "level": "DEBUG",
                "formatter": "standard",
                "filters": ["request_id"],
            }
        },
    )
