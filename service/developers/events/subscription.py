"""One subscriber's place in the change feed: a bounded queue of the events its audience may see, after its start.

A queue that overflows is cut: its events are dropped (they stay in the outbox) and a resync mark (None) takes
their place, so a slow client never grows the process's memory or holds up the others
(service.developers.events.feed says how the stream catches up or resyncs).
"""

from __future__ import annotations

import asyncio

from service.developers.events.cursor import Cursor
from service.developers.events.stored import Audience, StoredEvent


class Subscription:
    """One subscriber's place in the feed: a bounded queue of events after `start`; None in it means resync.

    `passed` is the newest event it was not shown that came while its queue was empty, so when every event before
    it that it is shown had been taken from the queue: the cursor it may resume from, once those have been sent.
    """

    __slots__ = ("audience", "overflowed", "passed", "queue", "start")

    def __init__(self, audience: Audience, size: int, start: Cursor) -> None:
        self.audience = audience
        self.start = start
        self.passed = start
        self.queue: asyncio.Queue[StoredEvent | None] = asyncio.Queue(size + 1)  # + 1: room for the resync mark
        self.overflowed = False

    def offer(self, event: StoredEvent) -> None:
        if self.overflowed or event.cursor <= self.start:
            return
        if not event.shown_to(self.audience):
            if self.queue.empty():
                self.passed = event.cursor
            return
        if self.queue.qsize() >= self.queue.maxsize - 1:
            self.cut()
            return
        self.queue.put_nowait(event)

    def cut(self) -> None:
        """End this subscription with a resync: its queued events are dropped (they stay in the outbox, and the
        subscriber resumes from the last one it was sent)."""
        self.overflowed = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
