"""One log line per request, and a request id on every answer and on every log line written while serving it.

The request id is the client's `X-Request-ID` when it looks like one (1 to 128 letters, digits and `._:-`), else
a new random 32-digit hex id. It is echoed in the answer's `X-Request-ID` and bound to a context variable for the
request's lifetime; a filter on the log handler copies it onto every record, whichever logger wrote it (the 503
warnings of service.problems included).

The layer wraps the app's ASGI handler itself, outside Litestar's router and exception handling: middleware given
to Litestar runs around each route only, so the router's 404 and 405 and the authentication's 401 would never pass
through it. Per request it costs a scan of the request headers, one context variable, one header appended and one
log record; the record is formatted and written to stderr by a thread of its own (BackgroundWriter), so a slow log
reader never blocks the event loop.

The line names the route template (`/api/developers/{developer_id}`), never the raw path, the status, the duration
until the answer's last byte, and the account id of an authenticated caller; never headers, tokens or bodies.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from contextvars import ContextVar
from queue import SimpleQueue
from typing import Any, Literal

import msgspec
from litestar.enums import ScopeType
from litestar.logging.config import LoggingConfig
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

LogFormat = Literal["json", "console"]

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
logger = logging.getLogger("service.requests")

# The attributes the request line adds to its record (`extra`), in the order the JSON line lists them.
REQUEST_FIELDS = ("method", "route", "status", "duration_ms", "account_id")


def _client_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            return value.decode("ascii") if _SANE.fullmatch(value) else None
    return None


class RequestLog:
    """Pure ASGI layer around Litestar's own handler (see the module's docstring)."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        rid = _client_id(scope) or os.urandom(16).hex()  # a uuid4's randomness, without its formatting
        header = (HEADER, rid.encode("ascii"))
        status = 500  # if nothing was sent: the server answers a bare 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if logger.isEnabledFor(logging.INFO):
                _log(scope, rid, status, (time.perf_counter() - started) * 1000)
            request_id.reset(token)


def _log(scope: HTTPScope, rid: str, status: int, duration_ms: float) -> None:
    route = scope.get("path_template") or None  # None: no route matched (a 404 or 405 of the router)
    account_id = getattr(scope.get("user"), "id", None)
    method = scope["method"]
    # The record is made directly: `logger.info` would also look up its caller's file and line in the stack.
    record = logger.makeRecord(
        logger.name,
        logging.INFO,
        __file__,
        0,
        "%s %s %d %.2f ms account %s",
        (method, route or "-", status, duration_ms, "-" if account_id is None else account_id),
        None,
        extra={
            "request_id": rid,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "account_id": account_id,
        },
    )
    logger.handle(record)


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


_encode = msgspec.json.Encoder().encode


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request_id, the request line's fields and
    an exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(record.created))}.{int(record.msecs):03d}Z",
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


class BackgroundWriter(logging.Handler):
    """Formats and writes records to stderr in a thread of its own: the caller pays for the record, the filters
    and a queue put. (The standard QueueHandler formats and copies each record in the caller's thread first,
    which costs the request path about twice as much.)"""

    def __init__(self) -> None:
        super().__init__()
        self._queue: SimpleQueue[logging.LogRecord | None] = SimpleQueue()
        self._writer = threading.Thread(target=self._write, name="log writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        self._queue.put(record)

    def _write(self) -> None:
        while (record := self._queue.get()) is not None:
            try:
                stream = sys.stderr
                stream.write(self.format(record) + "\n")
                stream.flush()
            except Exception:  # noqa: BLE001  (logging must never take the writer down)
                self.handleError(record)

    def close(self) -> None:
        # logging.shutdown at exit, or a later logging setup replacing this one: write what is queued, then stop.
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join(timeout=5)
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
