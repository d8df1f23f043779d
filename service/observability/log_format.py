"""How a log line reads: JSON (one object per line, for a log pipeline) or console text (LOG_FORMAT), and the
request line, which is not a LogRecord but a plain tuple of its fields (RequestLine), formatted as any record of the
`service.requests` logger would be.

The request line names the route template (`/api/developers/{developer_id}`), never the raw path, the status,
the duration until the answer's last byte, and the account id of an authenticated caller; never headers, tokens
or bodies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import msgspec

LogFormat = Literal["json", "console"]

logger = logging.getLogger("service.requests")

# The attributes the request line adds to its record (`extra`), in the order the JSON line lists them.
REQUEST_FIELDS = ("method", "route", "status", "duration_ms", "account_id")


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
