"""How far behind the primary each hot standby of DATABASE_REPLICA_URLS is, kept in memory: a read about to choose a
standby asks `Standby.usable`, which makes no round trip, and /metrics reports each standby's lag.

One task samples the primary's `pg_current_wal_lsn()` on a connection of its own to DATABASE_DIRECT_URL (a pooler
could hand each query to another server), one task per standby its `pg_last_wal_replay_lsn()` and the snapshot a
read there would take (`pg_current_snapshot()`: which writes it has, for `Standby.has_seen`), each every
`check_interval` seconds; a connection that fails is opened again with a backoff, and nothing waits for any of
them: neither the start nor /ready, which is about the primary alone.

Lag is time, and an upper bound of how stale a read there can be: how long ago the primary was last seen at a
position the standby has replayed (everything committed by then is there). The primary's positions are kept as
samples, one per new LSN with the times it was first and last seen at it; a standby whose replay LSN has reached
the newest sample is 0 behind. An idle primary writes no WAL, so a caught-up standby stays at 0 (`now() -
pg_last_xact_replay_timestamp()` on the standby would grow all the while). The bound is at most one check interval
above the true lag: the primary moved on somewhere between two samples.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg

from service.core.database_urls import database_name
from service.core.settings import Settings
from service.db.config import plain_url
from service.db.consistency import Need

logger = logging.getLogger("service.db.replicas")

APPLICATION_NAME = "devdir replica monitor"
PRIMARY_LSN = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
# The replay position (NULL: not a standby), and the snapshot a read there would take now: which writes it has.
REPLAY = "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint, pg_current_snapshot()::text"
RECONNECT_MIN, RECONNECT_MAX = 0.1, 2.0  # seconds of backoff after a failed connection or query
CHECK_MIN, CHECK_MAX = 0.05, 1.0
HISTORY_MIN_SECONDS = 60.0


def check_interval(max_lag: float) -> float:
    """Seconds between samples: a quarter of the lag allowed, so a standby past it is seen well before it is far
    past it; at least CHECK_MIN (two small queries per standby, never a busy loop), at most CHECK_MAX (fresh
    metrics)."""
    return min(max(max_lag / 4, CHECK_MIN), CHECK_MAX)


@dataclass
class Standby:
    """One standby as last measured; `lag_seconds` is None while unknown (down, or no primary sample to compare)."""

    name: str  # host:port/database, never the user or password
    dsn: str = field(repr=False)
    replay_lsn: int = 0
    lag_seconds: float | None = None
    up: bool = False
    measured_at: float = 0.0  # monotonic time of the last measurement
    # The snapshot last sampled there, as (xmin, xmax, running xids): what a read there sees at least.
    snapshot: tuple[int, int, frozenset[int]] | None = None

    def usable(self, max_lag: float, now: float | None = None) -> bool:
        """Whether a read may go here: up, and within `max_lag` seconds even if it has replayed nothing since it was
        measured (a lag grows by the time elapsed, at most). Memory only, no I/O."""
        if not self.up or self.lag_seconds is None:
            return False
        elapsed = (time.monotonic() if now is None else now) - self.measured_at
        return self.lag_seconds + elapsed <= max_lag

    def has_seen(self, need: Need) -> bool:
        """Whether the snapshot last sampled here included what `need` asks for (then every later one does, while
        the standby runs: replay only moves forward). Memory only; the read checks again in its statement."""
        if self.snapshot is None:
            return False
        xmin, xmax, running = self.snapshot
        if need.through is not None and need.through >= xmin:
            return False
        return all(xid < xmin or (xid < xmax and xid not in running) for xid in need.xids)

    def mark_down(self) -> None:
        """A read could not use it: not chosen again until the monitor has measured it again."""
        self.up = False
        self.lag_seconds = None


def parse_snapshot(text: str) -> tuple[int, int, frozenset[int]]:
    """`pg_snapshot`'s text form, `xmin:xmax:xip,...`."""
    xmin, xmax, running = text.split(":")
    return int(xmin), int(xmax), frozenset(int(xid) for xid in running.split(",") if xid)


class WalHistory:
    """The primary's WAL positions as sampled, oldest first, one per new LSN with the times it was first and last seen
    at it, for `keep` seconds and then some."""

    def __init__(self, keep: float) -> None:
        self.keep = keep
        self.times: list[float] = []  # when the primary was first seen at each position
        self.seen: list[float] = []  # ... and last seen at it
        self.lsns: list[int] = []
        self.pruned = False

    def add(self, at: float, lsn: int) -> None:
        if self.lsns and lsn <= self.lsns[-1]:
            self.seen[-1] = at
        else:
            self.times.append(at)
            self.seen.append(at)
            self.lsns.append(lsn)
        # The oldest sample goes only once the next is older than `keep` too: the oldest kept is then always older
        # than `keep`, so a standby behind all of them is reported more than `keep` behind, never less.
        while len(self.times) > 1 and self.times[1] < at - self.keep:
            del self.times[0], self.seen[0], self.lsns[0]
            self.pruned = True

    def lag(self, replay_lsn: int, now: float) -> float | None:
        """Seconds since the primary was last seen at a position `replay_lsn` has reached (at most that stale); 0 once
        it has reached the newest; None when it is behind the whole history and the history is not yet `keep` seconds
        long (just started: the standby may be far behind)."""
        if not self.lsns:
            return None
        index = bisect.bisect_right(self.lsns, replay_lsn)
        if index == len(self.lsns):
            return 0.0
        if index == 0:
            return max(now - self.times[0], 0.0) if self.pruned else None
        return max(now - self.seen[index - 1], 0.0)


class ReplicaLag:
    """The lag monitor: DATABASE_REPLICA_URLS's standbys, measured against the primary, while the app serves."""

    def __init__(self, settings: Settings) -> None:
        max_lag = settings.db_replica_max_lag_ms / 1000
        self.max_lag = max_lag
        self.interval = check_interval(max_lag)
        self.timeout = settings.db_connect_timeout  # for connecting and for each query
        self.primary_dsn = plain_url(settings.direct_url)
        self.standbys = tuple(Standby(database_name(url), plain_url(url)) for url in settings.replica_urls)
        self.history = WalHistory(max(HISTORY_MIN_SECONDS, 2 * max_lag))
        self.primary_up = False
        self._tasks: list[asyncio.Task[None]] = []
        self._failing: set[str] = set()  # names whose last query failed: logged once per outage

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        """For the app's `lifespan`: the monitor runs while the app serves; starting it waits for no database."""
        self._tasks = [asyncio.create_task(self._sample_primary(), name="replica-lag primary")]
        self._tasks += [asyncio.create_task(self._watch(s), name=f"replica-lag {s.name}") for s in self.standbys]
        try:
            yield
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _sample_primary(self) -> None:
        async for row in self._polled("the primary", self.primary_dsn, PRIMARY_LSN):
            lsn = None if row is None else row[0]
            if lsn is None:
                self.primary_up = False
            else:
                self.primary_up = True
                self.history.add(time.monotonic(), lsn)

    async def _watch(self, standby: Standby) -> None:
        async for row in self._polled(standby.name, standby.dsn, REPLAY):
            standby.measured_at = now = time.monotonic()
            standby.up = row is not None
            if row is None:
                standby.lag_seconds = None
                standby.snapshot = None
                continue
            standby.replay_lsn = row[0]
            standby.snapshot = parse_snapshot(row[1])
            # Against a primary not sampled now, a lag could look smaller than it is: unknown instead.
            standby.lag_seconds = self.history.lag(row[0], now) if self.primary_up else None

    async def _polled(self, name: str, dsn: str, query: str) -> AsyncIterator[asyncpg.Record | None]:
        """`query`'s row every interval on a connection of its own; None after each failure (the connection is
        then opened again, after a growing pause). A NULL first column counts as a failure."""
        connection: asyncpg.Connection | None = None
        backoff = RECONNECT_MIN
        try:
            while True:
                try:
                    async with asyncio.timeout(self.timeout):
                        if connection is None or connection.is_closed():
                            # Unnamed statements: the URL may be a transaction-mode pooler's (DB_POOLER).
                            connection = await asyncpg.connect(
                                dsn, server_settings={"application_name": APPLICATION_NAME}, statement_cache_size=0
                            )
                        value = await connection.fetchrow(query)
                    if value is None or value[0] is None:
                        raise LookupError("no WAL position (is it a hot standby?)")
                except Exception as exc:  # noqa: BLE001 (whatever fails, the state says unknown and we retry)
                    self._log(name, exc)
                    if connection is not None:
                        connection.terminate()
                        connection = None
                    yield None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, RECONNECT_MAX)
                    continue
                backoff = RECONNECT_MIN
                if name in self._failing:
                    self._failing.discard(name)
                    logger.info("replica lag: %s measured again", name)
                yield value
                await asyncio.sleep(self.interval)
        finally:
            if connection is not None:
                connection.terminate()  # no goodbye needed by a connection that only read

    def _log(self, name: str, exc: BaseException) -> None:
        """A warning when `name` starts failing, then quiet (debug) until it answers again."""
        level = logging.DEBUG if name in self._failing else logging.WARNING
        self._failing.add(name)
        logger.log(level, "replica lag: %s not measured (%s: %s)", name, type(exc).__name__, exc)
