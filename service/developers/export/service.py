"""The export: every matching developer, from one snapshot, as PostgreSQL's COPY writes it, in the import's formats.

A snapshot, however long the export takes: the export runs in a `SERIALIZABLE READ ONLY DEFERRABLE` transaction.
PostgreSQL starts such a transaction only from a snapshot that no running serializable writer can still make
inconsistent (it waits for one, within the statement timeout, if serializable writes are in flight), and then
runs it without predicate locks: it never fails with a serialization error and never makes a writer fail. A
`REPEATABLE READ` snapshot would be as stable, but could show a state that no serial order of serializable
writers ever had. A read-only transaction takes no transaction id, so it does not hold back the change feed's
cursor (service.developers.events); like any long snapshot it holds back VACUUM's horizon while it runs.

Rows go out as PostgreSQL produces them: `COPY (SELECT ...) TO STDOUT`, whose pieces the caller's sink forwards.
asyncpg stops reading the socket while the sink is busy, so a slow client slows PostgreSQL down instead of
filling memory. PostgreSQL builds each NDJSON line itself; COPY's CSV format, with a quote and a delimiter that
JSON text never contains raw (control characters are escaped in JSON), emits those lines byte for byte, where
the text format would double every backslash.

The connection: the request's plugin session closes when the answer starts, so an export takes a connection of
its own from the engine's pool (the request pool, DB_POOL_SIZE), before the answer starts, and holds it until the
last row has gone out, the client has left, or the stream has failed (service.developers.export.controller);
EXPORT_MAX_CONCURRENT exports at most per process, so exports cannot starve the requests.

Round trips: four (BEGIN; one statement that takes the snapshot and sets the transaction's statement timeout and
filter; the COPY, streamed; COMMIT), and a fifth the first time a pooled connection exports, when asyncpg
prepares the second statement.

On a hot standby (DATABASE_REPLICA_URLS, service.db.routing), where exports belong: the snapshot is a `REPEATABLE
READ READ ONLY` one (a standby refuses SERIALIZABLE; its snapshot is of the primary's commits in their order, but
may show a state that no serial order of the primary's serializable writers had), and its first statement also
checks that it includes the writes the request must see (its Consistency-Token). A standby may cancel a query that
stands in the way of replaying the primary's changes (a recovery conflict: VACUUM's cleanup of rows the snapshot
still sees, a page it holds pinned while the client reads slowly), at any moment. So the COPY there runs at the
database's speed into a temporary file (TMPDIR) before the answer starts, and the export is then sent from it:
a conflict, or the standby going down, only makes the export start again on another host, finally the primary,
before its first byte; the answer either carries the exact rows of one snapshot or is an error status. The price:
the first byte waits for the whole COPY, and the file takes the export's size on disk while it is sent (flat
memory all the same). A disk that fills up fails the spool, and the export then streams from the primary.
"""

from __future__ import annotations

import tempfile
from typing import IO, cast

import asyncpg
from sqlalchemy.engine.interfaces import PoolProxiedConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from service.core.validation import nfc
from service.db.consistency import NOTHING, Behind, Need, guard
from service.db.routing import ReadRouter
from service.developers.errors import ExportsBusy
from service.developers.export.streams import Format, Sink
from service.developers.schemas import CSV_HEADER

# Litestar adds `; charset=utf-8` to the text/csv of the answer.
MEDIA_TYPES: dict[Format, str] = {"csv": "text/csv", "ndjson": "application/x-ndjson"}

# The fields the import takes (DeveloperCreate), in its CSV header's order: what goes out comes back in unchanged.
_COLUMNS = ", ".join(CSV_HEADER)
# One compact JSON object per row, its fields in this order; `to_json` escapes each text as JSON must.
# Concatenation costs PostgreSQL about two thirds of what `row_to_json` of a subquery does (measured: 1.8 s
# against 2.6 s for a million rows), for the same bytes.
_JSON_LINE = " || ',' || ".join(f"""'"{column}":' || to_json({column})""" for column in CSV_HEADER)
_SELECT = {
    "csv": f"SELECT {_COLUMNS} FROM developers",  # noqa: S608  (constants only, here and below)
    "ndjson": f"SELECT '{{' || {_JSON_LINE} || '}}' FROM developers",  # noqa: S608
}
# COPY takes no bind parameters: the filter reads the specialty from a setting of the transaction, which the
# snapshot statement sets from a parameter. The value is compared once per row like a constant (it is stable),
# so the (specialty, name, id) index serves the filter.
_SPECIALTY = "current_setting('devdir.export_specialty')"
_ORDER = " ORDER BY id"  # a stable order: two exports of the same data are the same bytes
_COPY_OPTIONS: dict[Format, dict[str, object]] = {
    "csv": {"format": "csv", "header": True},
    # \x01 and \x02 never appear raw in JSON text, so no line is ever quoted or escaped: the JSON goes out as is.
    "ndjson": {"format": "csv", "quote": "\x01", "delimiter": "\x02"},
}
_BEGIN = "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE"
# The transaction's first statement takes its snapshot (waiting, if it must, for a safe one: that wait is bounded
# by the connection's own statement_timeout, DB_STATEMENT_TIMEOUT_MS); the COPY after it gets the export's own.
_SNAPSHOT = "SELECT set_config('statement_timeout', $1, true), set_config('devdir.export_specialty', $2, true)"
# On a standby: SERIALIZABLE is not available there, and REPEATABLE READ gives the same single snapshot (of the
# primary's commit order as replayed). Its first statement also checks that snapshot has what the read needs.
_BEGIN_STANDBY = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_SNAPSHOT_GUARDED = (
    "SELECT set_config('statement_timeout', $1, true) IS NOT NULL "
    f"AND set_config('devdir.export_specialty', $2, true) IS NOT NULL AND {guard(3)}"
)
SPOOL_PIECE = 256 * 1024  # bytes read from a spool file per send


def copy_query(fmt: Format, *, filtered: bool) -> str:
    """The SELECT an export COPYs (the benchmark copies the same one straight from asyncpg)."""
    return _SELECT[fmt] + (f" WHERE specialty = {_SPECIALTY}" if filtered else "") + _ORDER


def copy_options(fmt: Format) -> dict[str, object]:
    return dict(_COPY_OPTIONS[fmt])


class DeveloperExports:
    """The exports of one process: how each starts, and how many may run at once."""

    def __init__(self, reads: ReadRouter, *, max_concurrent: int, statement_timeout_ms: int) -> None:
        self.reads = reads
        self.max_concurrent = max_concurrent
        self.statement_timeout_ms = statement_timeout_ms
        self.running = 0

    @property
    def engine(self) -> AsyncEngine:
        return self.reads.primary

    async def start(self, fmt: Format, specialty: str | None, need: Need = NOTHING) -> Export:
        """An export whose snapshot is taken (and, on a standby, whose rows are spooled): everything that can fail
        before its first byte has been tried. Its snapshot includes what `need` names.

        ExportsBusy (503) when EXPORT_MAX_CONCURRENT exports are running here already; a starved pool or an
        unreachable database raises as any request's would (503)."""
        if self.running >= self.max_concurrent:
            raise ExportsBusy(self.max_concurrent)
        self.running += 1  # before the first await: exports starting at once count each other

        async def run(engine: AsyncEngine, needed: Need) -> Export:
            if engine is self.reads.primary:
                return await self._streamed(engine, fmt, specialty)
            return await self._spooled(engine, needed, fmt, specialty)

        try:
            return await self.reads.read(need, run)
        except BaseException:
            self.running -= 1
            raise

    async def _streamed(self, engine: AsyncEngine, fmt: Format, specialty: str | None) -> Export:
        """On the primary: the snapshot taken, the COPY left to stream to the client."""
        pooled = await engine.raw_connection()
        try:
            driver = cast(asyncpg.Connection, pooled.driver_connection)
            await driver.execute(_BEGIN)
            await driver.execute(_SNAPSHOT, str(self.statement_timeout_ms), nfc(specialty) if specialty else "")
        except BaseException:
            await _discard(pooled)
            raise
        return Export(self, fmt, filtered=specialty is not None, pooled=pooled, driver=driver)

    async def _spooled(self, engine: AsyncEngine, need: Need, fmt: Format, specialty: str | None) -> Export:
        """On a standby: the whole COPY into a temporary file, before the answer starts (see the module)."""
        spool = tempfile.TemporaryFile(prefix="devdir-export-")  # noqa: SIM115 (the Export closes it)
        pooled = await engine.raw_connection()
        try:
            driver = cast(asyncpg.Connection, pooled.driver_connection)
            await driver.execute(_BEGIN_STANDBY)
            has = await driver.fetchval(
                _SNAPSHOT_GUARDED,
                str(self.statement_timeout_ms),
                nfc(specialty) if specialty else "",
                *need.guard_args(),
            )
            if not has:
                raise Behind()

            async def write(piece: bytes) -> None:
                spool.write(piece)  # to the page cache: no wait worth a thread

            status = await driver.copy_from_query(
                copy_query(fmt, filtered=specialty is not None), output=write, **copy_options(fmt)
            )
        except BaseException:
            spool.close()
            await _discard(pooled)
            raise
        try:
            await driver.execute("COMMIT")
        except Exception:  # noqa: BLE001
            # The rows are whole (the server counted them, from one snapshot) and the transaction only read: how it
            # ends changes nothing. A standby may end the session right after the COPY (a recovery conflict with a
            # transaction left idle): the connection is dropped, the export kept, the standby not held down for it.
            pooled.invalidate()
        await greenlet_spawn(pooled.close)
        spool.seek(0)
        return Export(self, fmt, filtered=specialty is not None, spool=spool, rows=int(status.rsplit(" ", 1)[-1]))


async def _discard(pooled: PoolProxiedConnection) -> None:
    """Whatever state its transaction is in, the connection never goes back to the pool."""
    pooled.invalidate()
    await greenlet_spawn(pooled.close)


class Export:
    """One export: holding its connection inside its snapshot until `close` (on the primary), or its rows in a
    spool file (from a standby)."""

    def __init__(
        self,
        exports: DeveloperExports,
        fmt: Format,
        *,
        filtered: bool,
        pooled: PoolProxiedConnection | None = None,
        driver: asyncpg.Connection | None = None,
        spool: IO[bytes] | None = None,
        rows: int = 0,
    ) -> None:
        self._exports = exports
        self._pooled = pooled
        self._driver = driver
        self._spool = spool
        self._open = True
        self.format = fmt
        self._query = copy_query(fmt, filtered=filtered)
        self.media_type = MEDIA_TYPES[fmt]
        self.rows = rows
        self.aborted = False
        self._copied = False

    async def copy_to(self, sink: Sink) -> int:
        """Run the COPY (or read the spool), giving `sink` each piece as it arrives; the rows copied. asyncpg reads
        nothing more from PostgreSQL until `sink` returns, so a slow sink holds PostgreSQL back rather than piling
        up rows."""
        if self._spool is not None:
            while not self.aborted and (piece := self._spool.read(SPOOL_PIECE)):
                await sink(piece)
            self._copied = not self.aborted
            return self.rows
        assert self._driver is not None
        status = await self._driver.copy_from_query(self._query, output=sink, **copy_options(self.format))
        self.rows = int(status.rsplit(" ", 1)[-1])  # "COPY <rows>"
        self._copied = True
        return self.rows

    def abort(self) -> None:
        """Cut the export short (its client has left): the connection is closed at once, which ends the COPY in
        progress with a connection error (cancelling it instead would make asyncpg open a second connection to
        send PostgreSQL a cancel request), and PostgreSQL rolls the transaction back. A spooled export stops
        reading its file."""
        if self._open and not self.aborted:
            self.aborted = True
            if self._pooled is not None:
                self._pooled.invalidate()

    async def close(self) -> None:
        """Give the connection back: committed if the COPY ran to its end, else closed, never pooled mid-way (the
        server ends the transaction with the session); or delete the spool. Runs once, whatever happened; safe
        to call again."""
        if not self._open:
            return
        self._open = False
        self._exports.running -= 1
        if self._spool is not None:
            self._spool.close()
            return
        pooled, self._pooled = self._pooled, None
        assert pooled is not None
        assert self._driver is not None
        try:
            if self._copied and not self.aborted:
                await self._driver.execute("COMMIT")
            elif not self.aborted:
                pooled.invalidate()
        except BaseException:
            pooled.invalidate()
            raise
        finally:
            await greenlet_spawn(pooled.close)
