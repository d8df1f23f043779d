"""Read-your-writes across requests, pods and hosts: what a read must see, and the Consistency-Token that says so.

A write's position is its transaction id (xid8), not a WAL position, because the check that matters is made on the
host that serves the read, inside the read's own statement: `pg_visible_in_snapshot(xid, pg_current_snapshot())`
is true exactly when the statement's snapshot includes that transaction's commit (on a standby: once the commit has
been replayed). A WAL position could only be compared with `pg_last_wal_replay_lsn()`, which is evaluated after
the statement has taken its snapshot and so may be ahead of it; and behind a `-ro` service or a `ro` pooler, each
statement may reach another standby than the one last measured. A client's requests follow one another, so its
latest write committed after all its earlier ones: in WAL order on every standby, hence one xid is enough.

How a write's xid is obtained: `SELECT pg_current_xact_id_if_assigned()` inside the write's transaction, just
before its COMMIT: one round trip added per write, and only when DATABASE_REPLICA_URLS is set. It is the minimum
PostgreSQL's protocol allows: no message reports a transaction's id or its commit's position to the client;
asyncpg discards the rows of a multi-statement simple query, so the question cannot ride on the COMMIT; and the
outbox triggers that record the xid write it in the database, not in any answer. A transaction that wrote nothing
has no xid and gets no token: there is nothing for a read to wait for.

The token is the xid and an HMAC of it under SECRET_KEY, base64url: opaque to clients, and one the service did not
issue is refused (400), so a forged one can neither pin reads anywhere nor reach SQL. A token from another pod of
the same deployment is as good as this pod's own.

Without a token, each process also remembers each account's latest write for max(WRITE_MEMORY_MIN, 2 x
DB_REPLICA_MAX_LAG_MS) seconds: a client that forgets the header still reads its own writes on the same pod. The
memory lasts at least as long as the lag any standby may have and still serve (DB_REPLICA_MAX_LAG_MS): a write
older than that is on every standby allowed to serve a read.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
from sqlalchemy import ARRAY, Text, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from service.core.errors import InvalidInput

HEADER = "Consistency-Token"
HEADER_BYTES = HEADER.lower().encode()
WRITE_MEMORY_MIN = 5.0  # seconds an account's last write is remembered, at least (see the module)
MEMORY_ACCOUNTS_MAX = 100_000  # accounts remembered at most per process (the oldest go first)
_XID_BYTES, _MAC_BYTES = 8, 12
TOKEN_LENGTH = len(base64.urlsafe_b64encode(bytes(_XID_BYTES + _MAC_BYTES)).rstrip(b"="))
TOKEN_PATTERN = f"^[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}$"  # its form; only the service can make one that verifies
_XID = text("SELECT pg_current_xact_id_if_assigned()::text")
# Whether this request's writes should name their transaction (set by service.web.transaction when standbys serve
# reads); `capture` reads it, so a write that commits its own transaction (service.db.isolation.replayed) can too.
_CAPTURE: ContextVar[bool] = ContextVar("consistency_capture", default=False)
XID_KEY = "consistency_xid"  # where `capture` leaves the xid, in the session's `info`


@dataclass(frozen=True, slots=True)
class Need:
    """What a read's snapshot must include: the commits of `xids`, and, with `through`, every transaction whose
    id is at most `through` finished (the change feed's replays: all events up to a cursor)."""

    xids: tuple[int, ...] = ()
    through: int | None = None

    def __bool__(self) -> bool:
        return bool(self.xids) or self.through is not None

    def guard_args(self) -> list[object]:
        """The parameters of `guard`, in its order."""
        return [[str(xid) for xid in self.xids], None if self.through is None else str(self.through)]

    def guard_params(self) -> dict[str, object]:
        """The parameters of GUARD."""
        xids, through = self.guard_args()
        return {"xids": xids, "through": through}


NOTHING = Need()


def guard(first: int) -> str:
    """The SQL test of a Need, true when the statement's own snapshot includes it; its two parameters (see
    `Need.guard_args`) are ${first} and ${first + 1}. One shape for every Need, so each guarded statement is
    prepared once."""
    return _guard(f"${first}", f"${first + 1}")


def _guard(xids: str, through: str) -> str:
    return (
        f"(SELECT coalesce(bool_and(pg_visible_in_snapshot(x, pg_current_snapshot())), true) "  # noqa: S608
        f"FROM unnest(CAST({xids} AS text[])::xid8[]) AS x) "
        f"AND (CAST({through} AS text) IS NULL "
        f"OR CAST({through} AS text)::xid8 < pg_snapshot_xmin(pg_current_snapshot()))"
    )


# The same test as a SQLAlchemy statement, for a session's transaction (its first statement takes the snapshot).
GUARD = text(f"SELECT {_guard(':xids', ':through')}").bindparams(
    bindparam("xids", type_=ARRAY(Text)), bindparam("through", type_=Text)
)


class Behind(Exception):
    """The read's snapshot on a standby lacks what it needs: run it elsewhere."""


@functools.cache
def guarded(query: str, parameters: int, order: str | None) -> str:
    """`query` (with `parameters` parameters) with the guard of a Need as its first column, and one row of NULLs
    when it has no rows: on a standby, whether its snapshot has what the read needs, in the same statement. `order`
    is the query's ORDER BY, as its output columns."""
    ordered = "" if order is None else " ORDER BY " + ", ".join(f"q.{column.strip()}" for column in order.split(","))
    return (
        f"SELECT {guard(parameters + 1)} AS ok, q.* FROM (SELECT 1) AS one "  # noqa: S608 (constants only)
        f"LEFT JOIN LATERAL ({query}) AS q ON true{ordered}"
    )


async def fetch_needing(
    connection: asyncpg.Connection, need: Need, query: str, args: Sequence[object], order: str | None = None
) -> Sequence[Sequence[Any]]:
    """`query`'s rows, in one round trip; with a `need`, only if the statement's snapshot has it, else Behind.
    (The first column of every row of `query` must be non-NULL.)"""
    if not need:
        return cast(list[asyncpg.Record], await connection.fetch(query, *args))
    rows = await connection.fetch(guarded(query, len(args), order), *args, *need.guard_args())
    if not rows or rows[0][0] is not True:
        raise Behind()
    # The guard's row of NULLs stands for no rows at all.
    return [tuple(row)[1:] for row in rows if row[1] is not None]


class Tokens:
    """Issues and checks Consistency-Tokens under one key (derived from SECRET_KEY, for this use only)."""

    def __init__(self, secret_key: str) -> None:
        self._key = hmac.new(secret_key.encode(), b"devdir consistency token", hashlib.sha256).digest()

    def _mac(self, raw: bytes) -> bytes:
        return hmac.new(self._key, raw, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, xid: int) -> str:
        raw = xid.to_bytes(_XID_BYTES, "big")
        return base64.urlsafe_b64encode(raw + self._mac(raw)).rstrip(b"=").decode()

    def read(self, token: str) -> int:
        """The xid a token names; InvalidInput (400) for anything this service did not issue."""
        if len(token) == TOKEN_LENGTH:
            try:
                data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            except (binascii.Error, ValueError):
                data = b""
            raw, mac = data[:_XID_BYTES], data[_XID_BYTES:]
            if len(data) == _XID_BYTES + _MAC_BYTES and hmac.compare_digest(mac, self._mac(raw)):
                return int.from_bytes(raw, "big")
        raise InvalidToken()


class InvalidToken(InvalidInput):
    def __init__(self) -> None:
        message = f"not a {HEADER} this service issued: send back the header of a write's answer as it came"
        super().__init__("Validation failed", [{"key": HEADER, "source": "header", "message": message}])


class WriteMemory:
    """Each account's latest write in this process, for `seconds`: (xid, when it is forgotten)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._writes: OrderedDict[int, tuple[int, float]] = OrderedDict()

    def remember(self, account: int, xid: int) -> None:
        now = time.monotonic()
        self._writes[account] = (xid, now + self.seconds)
        self._writes.move_to_end(account)
        # Oldest first: drop what has expired, and the oldest beyond the bound.
        while self._writes:
            first, (_, until) = next(iter(self._writes.items()))
            if until > now and len(self._writes) <= MEMORY_ACCOUNTS_MAX:
                break
            del self._writes[first]

    def recall(self, account: int) -> int | None:
        entry = self._writes.get(account)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._writes[account]
            return None
        return entry[0]


class Consistency:
    """The process's tokens and write memory: what a request's reads need, and what its write answer carries."""

    def __init__(self, secret_key: str, max_lag_seconds: float) -> None:
        self.tokens = Tokens(secret_key)
        self.memory = WriteMemory(max(WRITE_MEMORY_MIN, 2 * max_lag_seconds))

    def need(self, token: str | None, account: int | None) -> Need:
        """What a read by `account` that sent `token` (the header, or None) must see."""
        xids: tuple[int, ...] = ()
        if token is not None:
            xids = (self.tokens.read(token),)
        remembered = None if account is None else self.memory.recall(account)
        if remembered is not None and remembered not in xids:
            xids += (remembered,)
        return Need(xids) if xids else NOTHING

    def written(self, xid: int, account: int | None) -> bytes:
        """The token of a committed write, remembered for its account; the header's value."""
        if account is not None:
            self.memory.remember(account, xid)
        return self.tokens.issue(xid).encode()


def capturing() -> None:
    """This request's writes name their transaction (`capture`)."""
    _CAPTURE.set(True)


async def capture(session: AsyncSession) -> None:
    """Just before COMMIT: note the transaction's id in `session.info` (when this request asks for it, and the
    transaction has written something)."""
    if _CAPTURE.get() and session.in_transaction():
        xid = (await session.execute(_XID)).scalar_one()
        if xid is not None:
            session.info[XID_KEY] = int(xid)
