"""At most one log line per kind of event and interval, counting the lines it holds back in between.

An outage makes every request fail the same way: a line per request says nothing new after the first and can
flood the log pipeline (15,000 lines in 15 seconds with the database down). Kinds are few and fixed by the
caller (the reasons for a 503), so the table stays small. No lock: the event loop runs one caller at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class LogThrottle:
    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._kinds: dict[str, tuple[float, int]] = {}  # kind -> (when its last line was written, held back since)

    def admit(self, kind: str) -> int | None:
        """None when a line of this kind was written less than `interval` ago (this one is counted instead);
        otherwise write this one, saying how many were held back since the last."""
        now = self._clock()
        last = self._kinds.get(kind)
        if last is not None and now - last[0] < self.interval:
            self._kinds[kind] = (last[0], last[1] + 1)
            return None
        self._kinds[kind] = (now, 0)
        return 0 if last is None else last[1]
