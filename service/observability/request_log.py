"""Log lines: the request id on every line written while serving a request, one line per request, and the thread
that writes them.

The request id is the client's `X-Request-ID` when it looks like one (1 to 128 letters, digits and `._:-`), else
a new 32-digit hex id (`new_id`); service.web.requests echoes it in the answer and binds it to `request_id` for
the request's lifetime, and a filter on the log handler copies it onto every record, whichever logger wrote it (the
503 warnings of service.web.problems included).

Every line is formatted and written by one thread of this process (`writer`), a batch every WRITE_INTERVAL
seconds, never by the event loop, so a slow log reader never blocks a request. The request line is not even a
LogRecord: the layer hands the writer a plain tuple of its fields (RequestLine), which the writer formats as any
record of the `service.requests` logger would be; the loop pays for one append. The designs this replaced, and
what each cost the hot read: docs/decisions/0001-request-log-writer-thread.md. The logger's level still decides:
`service.requests` above INFO writes no lines.

The request line names the route template (`/api/developers/{developer_id}`), never the raw path, the status,
the duration until the answer's last byte, and the account id of an authenticated caller; never headers, tokens
or bodies.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Literal, NamedTuple, TextIO

import msgspec
from litestar.logging.config import LoggingConfig
from litestar.types import Scope

LogFormat = Literal["json", "console"]

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# Seconds between the writer's batches: what a line may wait before it reaches stderr (flush() writes at once).
WRITE_INTERVAL = 1.0
# Lines that may wait for a stderr that does not keep up; beyond them lines are dropped, and the count of those
# dropped is written once stderr takes lines again. Memory stays bounded whoever reads the log, however slowly.
MAX_PENDING = 100_000

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
logger = logging.getLogger("service.requests")

# The attributes the request line adds to its record (`extra`), in the order the JSON line lists them.
REQUEST_FIELDS = ("method", "route", "status", "duration_ms", "account_id")


def client_id(scope: Scope) -> str | None:
    """The request's own `X-Request-ID`, if it has a sane one."""
    for name, value in scope["headers"]:
        if name == HEADER:
            return value.decode("ascii") if _SANE.fullmatch(value) else None
    return None


class _Ids:
    """New request ids: 32 hex digits, a random half drawn once per process (again in a forked child) and a count.

    Unique within a process by construction, and across processes with the odds of a 64-bit random collision. Not
    `os.urandom` per request: it releases the interpreter lock for its system call, and every such release on the
    event loop's thread hands the lock to granian's threads and waits to get it back (py-spy put 3% of the hot
    read's loop time in it)."""

    __slots__ = ("count", "prefix")

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix, self.count = os.urandom(8).hex(), itertools.count(1)

    def new(self) -> str:
        return f"{self.prefix}{next(self.count):016x}"


_ids = _Ids()
os.register_at_fork(after_in_child=_ids.reseed)
new_id = _ids.new


class RequestLine(NamedTuple):
    """One request, as the writer formats it: what `service.requests` writes."""

    created: float  # time.time() at the end of the request
    request_id: str
    method: str
    route: str | None  # None: no route matched (a 404 or 405 of the router)
    status: int
    duration_ms: float
    account_id: int | None

    def message(self) -> str:
        account = "-" if self.account_id is None else self.account_id
        return f"{self.method} {self.route or '-'} {self.status} {self.duration_ms:.2f} ms account {account}"

    def record(self) -> logging.LogRecord:
        """The line as the LogRecord the `service.requests` logger would have made."""
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, self.message(), (), None)
        record.created, record.msecs = self.created, (self.created % 1) * 1000
        record.request_id = self.request_id
        for name in REQUEST_FIELDS:
            setattr(record, name, getattr(self, name))
        record.duration_ms = round(self.duration_ms, 3)
        return record


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (None outside a request); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class ConsoleFormatter(logging.Formatter):
    """Human-readable: time, level, logger, [request id], message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
        return super().format(record)

    def format_request(self, line: RequestLine) -> str:
        """`line` as `format` would write its record, without making one."""
        return f"{_local(line.created)} INFO    {logger.name} [{line.request_id}] {line.message()}"


_encode = msgspec.json.Encoder().encode


class _Clock:
    """A line's time as text: `time.strftime` of each whole second once, for all the lines of that second, and the
    milliseconds from a table. The writer formats many lines a second; strftime costs it microseconds a call."""

    __slots__ = ("convert", "millis", "pattern", "prefix", "second")

    def __init__(self, pattern: str, convert: Callable[[float], time.struct_time], millis: str) -> None:
        self.pattern, self.convert = pattern, convert
        self.millis = tuple(millis % ms for ms in range(1000))
        self.second, self.prefix = -1, ""

    def text(self, created: float) -> str:
        second = int(created)
        if second != self.second:
            self.second, self.prefix = second, time.strftime(self.pattern, self.convert(second))
        return self.prefix + self.millis[int((created - second) * 1000)]


_utc = _Clock("%Y-%m-%dT%H:%M:%S", time.gmtime, ".%03dZ").text
_local = _Clock("%Y-%m-%d %H:%M:%S", time.localtime, ",%03d").text


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request_id, the request line's fields and
    an exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        fields = record.__dict__
        for name in REQUEST_FIELDS:
            if name in fields:
                line[name] = fields[name]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return _encode(line).decode()

    def format_request(self, line: RequestLine) -> str:
        """`line` as `format` would write its record, without making one."""
        return _encode(
            _JSONRequestLine(
                time=_utc(line.created),
                message=line.message(),
                request_id=line.request_id,
                method=line.method,
                route=line.route,
                status=line.status,
                duration_ms=round(line.duration_ms, 3),
                account_id=line.account_id,
            )
        ).decode()


class _JSONRequestLine(msgspec.Struct, kw_only=True):
    """The JSON request line, its keys in JSONFormatter's order (a Struct encodes faster than a dict)."""

    time: str
    level: str = "INFO"
    logger: str = "service.requests"
    message: str
    request_id: str
    method: str
    route: str | None
    status: int
    duration_ms: float
    account_id: int | None


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
