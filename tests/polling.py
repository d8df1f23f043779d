"""Waiting for something that must happen: a condition checked until it holds, or a failure after a generous
deadline. A deadline here is never a measurement: on a busy machine things take longer, never a different path."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

# Long enough for a loaded machine; the change feed, for one, holds events back while any transaction of the
# cluster that holds a transaction id is open, other test runs' included.
WAIT = 30.0


async def until(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str | Callable[[], str],
    within: float = WAIT,
    every: float = 0.02,
) -> None:
    """Wait until `condition()` (or the awaited result of it) holds; else fail after `within` seconds, saying what
    was awaited (`what`, or what it returns then, to show the state at the deadline)."""
    deadline = time.monotonic() + within
    while True:
        holds = condition()
        if inspect.isawaitable(holds):
            holds = await holds
        if holds:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what() if callable(what) else what}")
        await asyncio.sleep(every)
