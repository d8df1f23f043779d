"""The feed of one process: one reader of the outbox, fan-out to every subscriber of the process.

The reader follows the outbox after its cursor on a connection of its own, outside the request pool, and learns
when to read from its server's Outbox (service.developers.events.outbox): on PostgreSQL a LISTEN on that
connection wakes it at each commit that wrote events; on MariaDB it polls. Either way it also reads every
EVENTS_POLL_SECONDS, and the events themselves always come from the outbox, so a lost wake-up delays an event and
never loses it.

When the feed's connection is lost (a terminated backend, a killed connection, a restart, a failover), the feed
reconnects with backoff (0.1 s doubling to 2 s) and catches up from its cursor; until then it reads through the
request pool, so events keep flowing. Its state: `listening` while its own connection is up, `polling` while not.

A subscriber from now (no cursor) starts where a read of the outbox begun after it asked ends: every event committed
before it asked is behind it, though the wake-up that would bring that event (a NOTIFY, MariaDB's poll) may not have
come yet. Subscribers arriving together share that read.

Each subscriber is shown only what its audience (service.developers.events.stored.Audience) may see: the events
its specialty filter matches, and no other account's import jobs. An event it is not shown still moves it on:
its keepalive carries the cursor it has been given everything up to (SSE's `id:`, a WebSocket ping's `after`),
so a reconnect resumes past the events it was not shown, and its distance behind counts only those it is.

Each subscriber has a bounded queue of EVENTS_QUEUE_SIZE events, so a slow client never grows the process's
memory or holds up the others. When a subscriber's queue overflows (a burst, such as the events a long import held
back), its stream leaves the live queue and catches up from the outbox a page at a time, then rejoins; one that is
by then more than RESYNC_FACTOR queues behind is sent a resync naming the last event it was sent, and its stream
ends: it resumes from there on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from service.core.settings import Settings
from service.db.consistency import Need
from service.db.routing import ReadRouter
from service.developers.errors import CursorExpired
from service.developers.events.cursor import START, Cursor, format_cursor
from service.developers.events.outbox import Outbox, OutboxReads, outbox_for
from service.developers.events.postgres import PENDING_POLL_SECONDS
from service.developers.events.schemas import Ping, Resync
from service.developers.events.stored import Audience, StoredEvent
from service.developers.events.subscription import Subscription
from service.observability.log_throttle import LogThrottle

logger = logging.getLogger("service.developers.events")

__all__ = ["PENDING_POLL_SECONDS", "Feed"]

PAGE = 1000  # events read per round trip
RECONNECT_MIN, RECONNECT_MAX = 0.1, 2.0  # listener reconnect backoff, seconds
STOP_RETRY_SECONDS = 0.1  # how long stop() waits for the reader to end before cancelling it again
# A subscriber whose queue overflows is caught up from the outbox unless it is more than this many queues'
# worth of events behind: then it is sent a resync instead.
RESYNC_FACTOR = 4
State = Literal["starting", "listening", "polling", "stopped"]


class Feed:
    def __init__(
        self, engine: AsyncEngine, settings: Settings, reads: ReadRouter | None = None, outbox: Outbox | None = None
    ) -> None:
        self.engine = engine
        # Where replays and counts of events the feed has served run: a standby when one is fit (service.db.routing).
        self.reads = reads if reads is not None else ReadRouter(engine)
        # The server's side of the feed: its own connection, how it is woken, the outbox's SQL.
        self.outbox = outbox if outbox is not None else outbox_for(settings)
        self.poll_seconds = settings.events_poll_seconds
        self.keepalive_seconds = settings.events_keepalive_seconds
        self.queue_size = settings.events_queue_size
        self.cursor: Cursor = START
        self.state: State = "starting"
        self.subscriptions: set[Subscription] = set()
        self.delivered = 0  # events fanned out since start, each counted once
        # Called with each event's delivery lag, seconds from its statement (the database's clock) to its fan-out.
        self.lag_observer: Callable[[float], None] | None = None
        self._wake = asyncio.Event()
        self.outbox.follow_commits(engine, self._wake.set)
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()  # set once the cursor has been read from the outbox
        self._reads_begun = 0  # reads of the outbox begun (`_catch_up`)
        # Subscribers from now waiting for a read begun after they asked: (reads begun then, the cursor it ends at).
        self._waiting: list[tuple[int, asyncio.Future[Cursor]]] = []
        self._errors = LogThrottle(10.0)

    # Lifecycle

    async def start(self) -> None:
        """Start reading in the background; never waits for the database (the feed catches up when it can)."""
        self._task = asyncio.create_task(self._run(), name="change-feed")

    async def stop(self) -> None:
        task = self._task
        # Cancelled again until it ends: Python 3.11's asyncio.wait_for (asyncmy's connect uses it) drops a
        # cancellation that arrives as the connection completes, and the reader would then run on for ever.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=STOP_RETRY_SECONDS)
        if task is not None and not task.cancelled() and task.exception() is not None:
            logger.warning("change feed: the reader had ended with an error", exc_info=task.exception())
        await self.outbox.close()
        self.state = "stopped"
        for _, ended in self._waiting:  # subscribers from now start where the feed stopped, and are cut there
            if not ended.done():
                ended.set_result(self.cursor)
        for subscription in self.subscriptions:
            subscription.cut()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        """For the app's `lifespan`: the feed runs while the app serves."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    # Subscribers

    async def events(self, after: Cursor | None, audience: Audience) -> AsyncGenerator[StoredEvent | Resync | Ping]:
        """Every event after `after` (or from now), then live ones, those `audience` is shown; a Ping after each
        EVENTS_KEEPALIVE_SECONDS without one (with the cursor it has been given everything up to, when events it
        was not shown moved it on), and a final Resync if the subscriber falls too far behind.

        Check `after` with `resumable` first: this generator starts only once the answer has started.
        """
        if not self._started.is_set():
            # The feed has not read where the outbox ends yet (it fans out only what commits after that first
            # read), so its cursor is no place to start from: a subscriber from now starts where the outbox ends
            # now, and waits for the feed; what commits meanwhile comes as a replay.
            if after is None:
                async with self._pooled() as outbox:
                    after = await outbox.latest()
            while not self._started.is_set():
                if self.state == "stopped":
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.keepalive_seconds):
                        await self._started.wait()
                if not self._started.is_set():
                    yield Ping()
        elif after is None:
            after = await self._now()
            if self.state == "stopped":
                return
        subscription = self._subscribe(audience)
        try:
            last = subscription.start if after is None else after
            while True:
                async for event in self._replayed(last, subscription.start, audience):
                    yield event
                    last = event.cursor
                last = max(last, subscription.start)
                while (queued := await self._next(subscription)) is not None:
                    if isinstance(queued, Ping):
                        # The queue has been empty for a while: whatever it was shown before `passed` is sent.
                        moved = subscription.passed > last
                        last = max(last, subscription.passed)
                        yield Ping(after=format_cursor(last)) if moved else queued
                    elif queued.cursor > last:
                        yield queued
                        last = queued.cursor
                # The queue overflowed: a burst came faster than this subscriber read it. If it is not too far
                # behind, its own stream catches it up from the outbox, as a reconnect with `after` would, and
                # puts it back on the live queue; other subscribers never wait for it.
                self.subscriptions.discard(subscription)
                if self.state == "stopped" or await self._behind(last, audience) > RESYNC_FACTOR * self.queue_size:
                    sent = None if last == START else format_cursor(last)
                    yield Resync(after=sent, detail="this subscriber fell too far behind; resume from `after`")
                    return
                subscription = self._subscribe(audience)
        finally:
            self.subscriptions.discard(subscription)

    async def _now(self) -> Cursor:
        """Where a subscriber from now starts: the cursor a read of the outbox begun after it asked ends at, so
        every event committed before it asked is behind it, though the wake-up (a NOTIFY, a poll) that would bring
        those events may not have come yet. The feed's cursor if no read ends within EVENTS_KEEPALIVE_SECONDS (the
        server is out of reach: the feed catches up later)."""
        ended: asyncio.Future[Cursor] = asyncio.get_running_loop().create_future()
        waiter = (self._reads_begun, ended)
        self._waiting.append(waiter)
        self._wake.set()
        try:
            async with asyncio.timeout(self.keepalive_seconds):
                return await ended
        except TimeoutError:
            return self.cursor
        finally:
            with contextlib.suppress(ValueError):
                self._waiting.remove(waiter)

    def _subscribe(self, audience: Audience) -> Subscription:
        subscription = Subscription(audience, self.queue_size, self.cursor)
        if not self.subscriptions:
            self._wake.set()  # the first subscriber: read now, and at its pace from now on (Outbox.wait_seconds)
        self.subscriptions.add(subscription)
        return subscription

    async def _next(self, subscription: Subscription) -> StoredEvent | Ping | None:
        """The subscription's next event, a Ping after EVENTS_KEEPALIVE_SECONDS without one, None on overflow."""
        try:
            async with asyncio.timeout(self.keepalive_seconds):
                return await subscription.queue.get()
        except TimeoutError:
            return Ping()

    async def _replayed(self, after: Cursor, upto: Cursor, audience: Audience) -> AsyncIterator[StoredEvent]:
        """The events in (after, upto] `audience` is shown, from the outbox, a page at a time (the feed has served
        them already)."""
        while after < upto:
            page = await self._replay(after, upto, audience)
            if not page:
                return
            for event in page:
                yield event
            after = page[-1].cursor

    async def _behind(self, last: Cursor, audience: Audience) -> int:
        """How many events the feed has served after `last` that `audience` is shown (counted up to a bound)."""
        bound = RESYNC_FACTOR * self.queue_size + 1
        upto = self.cursor

        async def run(engine: AsyncEngine, need: Need) -> int:
            async with self.outbox.pooled(engine) as outbox:
                return await outbox.count_between(last, upto, audience, bound, need)

        return await self.reads.read(Need(through=upto[0]), run)

    async def resumable(self, after: Cursor) -> None:
        """Raise CursorExpired if events after `after` may have been deleted by retention (410)."""
        async with self._pooled() as outbox:
            if after < await outbox.horizon():
                raise CursorExpired()

    # The reader

    async def _run(self) -> None:
        next_connect = 0.0
        backoff = RECONNECT_MIN
        while True:
            if not self.outbox.connected():
                await self._disconnect()
                if time.monotonic() >= next_connect:
                    try:
                        await self._connect()
                        backoff = RECONNECT_MIN
                    except Exception as exc:  # noqa: BLE001 (whatever stops the connection, the feed polls and retries)
                        self.state = "polling"
                        self._log("the feed's connection failed", exc)
                        next_connect = time.monotonic() + backoff
                        backoff = min(backoff * 2, RECONNECT_MAX)
            self._wake.clear()
            pending = False
            try:
                pending = await self._catch_up()
            except self.outbox.errors as exc:
                self._log("reading the outbox failed", exc)
            except Exception:  # a bug must not end the feed of every subscriber: log it and keep reading
                logger.exception("change feed: unexpected error; reading on")
            timeout = self.outbox.wait_seconds(pending, bool(self.subscriptions))
            if self.state != "listening":  # wake for the next reconnect attempt too
                timeout = min(timeout, max(next_connect - time.monotonic(), 0.01))
            if timeout <= 0:
                await asyncio.sleep(0)  # more to read at once: let subscribers take what was fanned out
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _connect(self) -> None:
        await self.outbox.connect(self._wake.set)
        self.state = "listening"
        self._wake.set()  # catch up on whatever was committed while not connected

    async def _disconnect(self) -> None:
        if self.state == "listening":
            self.state = "polling"
        await self.outbox.close()

    async def _catch_up(self) -> bool:
        """Fan out every servable event after the cursor; whether more wait for an older transaction."""
        self._reads_begun += 1
        begun = self._reads_begun
        async with self._reader() as outbox:
            if not self._started.is_set():
                self.cursor = await outbox.latest()
                self._started.set()
            while True:
                batch = await outbox.read(self.cursor, PAGE)
                if batch:
                    self.cursor = batch[-1].cursor
                    self._fan_out(batch)
                if len(batch) < PAGE:
                    pending = await outbox.pending(self.cursor)
                    self._read_ended(begun)
                    return pending

    def _read_ended(self, begun: int) -> None:
        """Read `begun` has fanned out all it found: it starts the subscribers from now who asked before it began."""
        started = [ended for asked, ended in self._waiting if asked < begun]
        self._waiting = [waiter for waiter in self._waiting if waiter[0] >= begun]
        for ended in started:
            if not ended.done():
                ended.set_result(self.cursor)

    def _fan_out(self, batch: list[StoredEvent]) -> None:
        self.delivered += len(batch)
        if (observe := self.lag_observer) is not None:
            now = datetime.now(UTC)
            for event in batch:
                observe(max((now - event.event.at).total_seconds(), 0.0))  # 0 if the clocks disagree
        for subscription in tuple(self.subscriptions):
            for event in batch:
                subscription.offer(event)

    async def _replay(self, after: Cursor, upto: Cursor, audience: Audience) -> list[StoredEvent]:
        """A page of the events in (after, upto]; on a standby only from a snapshot that has all of them (every
        transaction up to `upto`'s has ended there, as it had on the primary when the feed served `upto`)."""

        async def run(engine: AsyncEngine, need: Need) -> list[StoredEvent]:
            async with self.outbox.pooled(engine) as outbox:
                return await outbox.read_between(after, upto, audience, PAGE, need)

        return await self.reads.read(Need(through=upto[0]), run)

    @contextlib.asynccontextmanager
    async def _reader(self) -> AsyncIterator[OutboxReads]:
        """The outbox on the feed's own connection while it is up; on a pooled one while it is not."""
        own = self.outbox.own()
        if own is not None:
            yield own
        else:
            async with self._pooled() as outbox:
                yield outbox

    def _pooled(self) -> contextlib.AbstractAsyncContextManager[OutboxReads]:
        return self.outbox.pooled(self.engine)

    def _log(self, what: str, exc: BaseException) -> None:
        held_back = self._errors.admit(what)
        if held_back is not None:
            logger.warning("change feed: %s (%s: %s)", what, type(exc).__name__, exc)
