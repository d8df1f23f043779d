"""Request ids: the client's `X-Request-ID` when it looks like one (1 to 128 letters, digits and `._:-`), else a
new 32-digit hex id (`new_id`). service.web.requests echoes it in the answer and binds it to `request_id` for the
request's lifetime; a filter on the log handler (RequestIdFilter) copies it onto every record, whichever logger
wrote it (the 503 warnings of service.web.problems included).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from contextvars import ContextVar

from litestar.types import Scope

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


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


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (None outside a request); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True
