"""The export on MariaDB: the same bytes as PostgreSQL's COPY, from one consistent snapshot, streamed.

The snapshot: `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ` then `START TRANSACTION WITH CONSISTENT SNAPSHOT,
READ ONLY`: InnoDB takes the read view at once (not at the first read), and every read of the transaction sees
it, however long the export takes. It is a REPEATABLE READ snapshot, not PostgreSQL's SERIALIZABLE READ ONLY
DEFERRABLE one: it may show a state that no serial order of concurrent writers had (MariaDB has no such mode).
Like any long read view it holds back InnoDB's purge while it runs.

The stream: one SELECT in id order, read with asyncmy's unbuffered cursor (SSCursor), FETCH rows at a time, its
socket paused between fetches once enough is buffered (service.db.mariadb_backpressure: asyncmy alone would read
the whole result into memory): a slow client holds MariaDB back (TCP) and memory stays flat. Rows
are encoded here, as PostgreSQL's COPY writes them: NDJSON lines by msgspec (whose JSON escapes are to_json's,
byte for byte: a test compares), CSV as COPY's CSV format quotes (a field with a comma, a quote, CR or LF).

Timeouts: the SELECT runs under `SET STATEMENT max_statement_time` = EXPORT_STATEMENT_TIMEOUT_MS (MariaDB's
syntax; MySQL 8 would need MAX_EXECUTION_TIME). A client that reads nothing is cut by the route
(EXPORT_IDLE_TIMEOUT_SECONDS); the server's own wait on a socket it cannot write to, net_write_timeout, is set
past it for the statement (at least its 60 s default), so the route decides. The snapshot itself never waits (no
DEFERRABLE): its statement runs under the connection's own max_statement_time.

The connection: one of the request pool's, taken before the answer starts and held until the last row has gone
out, the client has left, or the stream has failed; an aborted export closes it (an unbuffered result cannot be
abandoned mid-way on a live connection). Round trips: the isolation, the START TRANSACTION, the SELECT (its rows
then stream, FETCH at a time read from the socket, no request per fetch), COMMIT.
"""

from __future__ import annotations

import math
from typing import Any, cast

import msgspec
from asyncmy.cursors import SSCursor
from sqlalchemy.engine.interfaces import PoolProxiedConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from service.core.validation import nfc
from service.db.consistency import NOTHING, Need
from service.db.mariadb_backpressure import Backpressure
from service.developers.errors import ExportsBusy
from service.developers.export.streams import Format, Sink
from service.developers.schemas import CSV_HEADER

MEDIA_TYPES: dict[Format, str] = {"csv": "text/csv", "ndjson": "application/x-ndjson"}
FETCH = 2000  # rows per read of the unbuffered result
_ISOLATION = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
_SNAPSHOT = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"
_COLUMNS = ", ".join(CSV_HEADER)
_CSV_SPECIAL = frozenset(',"\r\n')


class Line(msgspec.Struct):
    """One NDJSON line, its fields in the order of PostgreSQL's export (CSV_HEADER)."""

    name: str
    email: str
    specialty: str


assert Line.__struct_fields__ == CSV_HEADER, "the NDJSON fields must be the export's columns, in order"
_ENCODER = msgspec.json.Encoder()


def select(*, filtered: bool, timeout_ms: int, idle_seconds: float) -> str:
    # utf8mb4_nopad_bin compares by code point, trailing spaces included, as PostgreSQL's C collation does.
    where = " WHERE specialty = %s" if filtered else ""
    return (
        f"SET STATEMENT max_statement_time = {timeout_ms / 1000:.3f}, "  # noqa: S608 (numbers and constants)
        f"net_write_timeout = {max(60, math.ceil(idle_seconds) + 10)} FOR "
        f"SELECT {_COLUMNS} FROM developers{where} ORDER BY id"
    )


def csv_field(value: str) -> str:
    if _CSV_SPECIAL.isdisjoint(value):
        return value
    return '"' + value.replace('"', '""') + '"'


def encode(fmt: Format, rows: list[tuple[str, str, str]]) -> bytes:
    """`rows` as PostgreSQL's COPY of the export writes them."""
    if fmt == "ndjson":
        return _ENCODER.encode_lines([Line(*row) for row in rows])
    return "".join(",".join(map(csv_field, row)) + "\n" for row in rows).encode()


class MariaDBExports:
    """The exports of one process on MariaDB: how each starts, and how many may run at once."""

    def __init__(
        self, engine: AsyncEngine, *, max_concurrent: int, statement_timeout_ms: int, idle_timeout_seconds: float
    ) -> None:
        self.engine = engine
        self.idle_timeout_seconds = idle_timeout_seconds
        self.max_concurrent = max_concurrent
        self.statement_timeout_ms = statement_timeout_ms
        self.running = 0

    async def start(self, fmt: Format, specialty: str | None, need: Need = NOTHING) -> MariaDBExport:
        """An export whose snapshot is taken. `need` has nothing to ask of MariaDB: it has no standbys here.

        ExportsBusy (503) when EXPORT_MAX_CONCURRENT exports are running here already."""
        del need
        if self.running >= self.max_concurrent:
            raise ExportsBusy(self.max_concurrent)
        self.running += 1  # before the first await: exports starting at once count each other
        try:
            pooled = await self.engine.raw_connection()
            try:
                driver: Any = pooled.driver_connection
                async with driver.cursor() as cursor:
                    await cursor.execute(_ISOLATION)
                    await cursor.execute(_SNAPSHOT)
            except BaseException:
                await _discard(pooled)
                raise
        except BaseException:
            self.running -= 1
            raise
        query = select(
            filtered=specialty is not None,
            timeout_ms=self.statement_timeout_ms,
            idle_seconds=self.idle_timeout_seconds,
        )
        args = (nfc(specialty),) if specialty is not None else None
        return MariaDBExport(self, fmt, pooled, query, args)


async def _discard(pooled: PoolProxiedConnection) -> None:
    pooled.invalidate()
    await greenlet_spawn(pooled.close)


class MariaDBExport:
    """One export on MariaDB, holding its connection inside its snapshot until `close`."""

    def __init__(
        self,
        exports: MariaDBExports,
        fmt: Format,
        pooled: PoolProxiedConnection,
        query: str,
        args: tuple[str, ...] | None,
    ) -> None:
        self._exports = exports
        self._pooled: PoolProxiedConnection | None = pooled
        self._driver: Any = pooled.driver_connection
        self._query = query
        self._args = args
        self._open = True
        self._streamed = False
        self.format = fmt
        self.media_type = MEDIA_TYPES[fmt]
        self.rows = 0
        self.aborted = False

    async def copy_to(self, sink: Sink) -> int:
        if self.format == "csv":
            await sink(",".join(CSV_HEADER).encode() + b"\n")
        flow = Backpressure(self._driver)
        async with self._driver.cursor(SSCursor) as cursor:
            await cursor.execute(self._query, self._args)
            try:
                while rows := cast(list[tuple[str, str, str]], await cursor.fetchmany(FETCH)):
                    self.rows += len(rows)
                    flow.pause()  # the socket reads nothing while the rows are sent on
                    await sink(encode(self.format, rows))
                    flow.resume()
                    if self.aborted:
                        raise ConnectionError("the export was aborted")
            finally:
                flow.resume()  # the COMMIT's answer must be read
        self._streamed = True
        return self.rows

    def abort(self) -> None:
        """Close the connection at once: an unbuffered result in progress ends with a connection error, and the
        server rolls the transaction back."""
        if self._open and not self.aborted:
            self.aborted = True
            if self._pooled is not None:
                self._pooled.invalidate()

    async def close(self) -> None:
        """COMMIT and give the connection back if every row went out; else close it. Once, whatever happened."""
        if not self._open:
            return
        self._open = False
        self._exports.running -= 1
        pooled, self._pooled = self._pooled, None
        assert pooled is not None
        try:
            if self._streamed and not self.aborted:
                await self._driver.commit()
            elif not self.aborted:
                pooled.invalidate()
        except BaseException:
            pooled.invalidate()
            raise
        finally:
            await greenlet_spawn(pooled.close)
