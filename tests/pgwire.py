"""A proxy in front of the test PostgreSQL that counts what the database receives: connections and round trips.

Counting at the wire, not in SQLAlchemy's events, sees everything the driver sends: the BEGIN and ROLLBACK of a
pre-ping, a COMMIT, an asyncpg statement preparation. A round trip is a message the client then waits on: a
simple Query ('Q'), or the Sync ('S') that ends an extended-protocol exchange (Parse/Bind/Execute/...). The
proxy refuses TLS (answers 'N' to an SSLRequest) so that it can read the messages.

The change feed's own connection (application_name 'devdir change feed', outside the request pool) is passed
through uncounted, in `feed_connections` only: it reads the outbox whenever a write commits, which is not a
round trip of the request.

Every connection, the feed's too, is also recorded in `sessions`: the frontend messages that decide what a
connection leaves on its session (Query, Parse, Bind, Close, Sync, Flush) and the backend's ReadyForQuery with its
transaction status, in the order the proxy saw them, for tests/db/session_state.py to judge.
"""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104
_ROUND_TRIPS = {b"Q", b"S"}
_RECORDED = {b"Q", b"P", b"B", b"C", b"S", b"H"}
FEED_APPLICATION = b"devdir change feed"


@dataclass(frozen=True)
class Message:
    """A message of a recorded session: frontend 'Q' Query, 'P' Parse, 'B' Bind, 'C' Close, 'S' Sync, 'H' Flush;
    backend 'Z' ReadyForQuery."""

    kind: str
    sql: str = ""  # Query, Parse
    statement: str = ""  # Parse, Bind, Close of a statement ('' is the unnamed one)
    portal: str = ""  # Bind, Close of a portal
    status: str = ""  # ReadyForQuery: 'I' idle, 'T' in a transaction block, 'E' in a failed one
    closes: str = ""  # Close: 'S' a statement, 'P' a portal


@dataclass
class Session:
    """One client connection through the proxy: its application_name and what went over it."""

    application: str
    messages: list[Message] = field(default_factory=list)


def _message(kind: bytes, body: bytes) -> Message:
    if kind == b"Q":
        return Message("Q", sql=body[:-1].decode())
    if kind == b"P":
        name, sql = body.split(b"\0", 2)[:2]
        return Message("P", sql=sql.decode(), statement=name.decode())
    if kind == b"B":
        portal, statement = body.split(b"\0", 2)[:2]
        return Message("B", statement=statement.decode(), portal=portal.decode())
    if kind == b"C":
        what, name = body[:1].decode(), body[1:-1].decode()
        return Message("C", closes=what, **({"statement": name} if what == "S" else {"portal": name}))
    return Message(kind.decode())


class _Backend:
    """Finds the ReadyForQuery messages in the server's stream, which arrives in chunks of any size."""

    def __init__(self) -> None:
        self.pending = b""  # the start of a message whose header (or status byte) is not all here yet
        self.skip = 0  # bytes of the current message still to come, passed over

    def statuses(self, chunk: bytes) -> list[str]:
        data, position, found = self.pending + chunk, self.skip, []
        while position + 5 <= len(data):
            kind, length = data[position : position + 1], struct.unpack("!i", data[position + 1 : position + 5])[0]
            if kind == b"Z":
                if position + 6 > len(data):
                    break
                found.append(chr(data[position + 5]))
            position += 1 + length
        self.pending, self.skip = (data[position:], 0) if position < len(data) else (b"", position - len(data))
        return found


@dataclass
class Wire:
    url: str  # the same database, through the proxy
    connections: int = 0
    messages: Counter[bytes] = field(default_factory=Counter)
    statements: list[str] = field(default_factory=list)  # the SQL of each Query and Parse
    feed_connections: int = 0  # connections of the change feed's listener, not counted above
    sessions: list[Session] = field(default_factory=list)  # every connection's messages, the feed's too

    @property
    def round_trips(self) -> int:
        return sum(self.messages[kind] for kind in _ROUND_TRIPS)

    def snapshot(self) -> tuple[int, int]:
        return self.connections, self.round_trips


async def _startup(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Read the client's startup packets, refusing encryption; the StartupMessage to forward."""
    while True:
        (length,) = struct.unpack("!i", await reader.readexactly(4))
        body = await reader.readexactly(length - 4)
        (code,) = struct.unpack("!i", body[:4])
        if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
            return struct.pack("!i", length) + body
        writer.write(b"N")
        await writer.drain()


async def _client_to_server(
    wire: Wire,
    session: Session,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream: asyncio.StreamWriter,
) -> None:
    with suppress(asyncio.IncompleteReadError, ConnectionError):
        startup = await _startup(reader, writer)
        upstream.write(startup)
        # StartupMessage: length, protocol version, then NUL-terminated names and values.
        parameters = startup[8:].split(b"\0")
        names = dict(zip(parameters[0::2], parameters[1::2], strict=False))
        session.application = names.get(b"application_name", b"").decode()
        wire.sessions.append(session)
        if names.get(b"application_name") == FEED_APPLICATION:
            wire.feed_connections += 1
            await _forward(Wire(url=wire.url), session, reader, upstream)
            return
        wire.connections += 1
        await _forward(wire, session, reader, upstream)


async def _forward(wire: Wire, session: Session, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter) -> None:
    while True:
        header = await reader.readexactly(5)
        kind, length = header[:1], struct.unpack("!i", header[1:])[0]
        body = await reader.readexactly(length - 4)
        wire.messages[kind] += 1
        if kind in _RECORDED:
            message = _message(kind, body)
            session.messages.append(message)
            if kind in (b"Q", b"P"):
                wire.statements.append(message.sql)
        upstream.write(header + body)
        await upstream.drain()


async def _server_to_client(session: Session, upstream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    backend = _Backend()
    with suppress(ConnectionError):
        while data := await upstream.read(65536):
            session.messages.extend(Message("Z", status=status) for status in backend.statuses(data))
            writer.write(data)
            await writer.drain()


@asynccontextmanager
async def counting_proxy(database_url: str) -> AsyncIterator[Wire]:
    """A Wire whose `url` reaches `database_url`'s database through a counting proxy, for the block's length."""
    target = make_url(database_url)
    socket_dir = target.query.get("host")
    port = target.port or 5432
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if isinstance(socket_dir, str):
            up_reader, up_writer = await asyncio.open_unix_connection(f"{socket_dir}/.s.PGSQL.{port}")
        else:
            up_reader, up_writer = await asyncio.open_connection(target.host or "127.0.0.1", port)
        session = Session(application="")
        pumps = [
            asyncio.ensure_future(_client_to_server(wire, session, reader, writer, up_writer)),
            asyncio.ensure_future(_server_to_client(session, up_reader, writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for stream in (writer, up_writer):
                stream.close()

    def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(handle(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(track, "127.0.0.1", 0)
    proxy_port = server.sockets[0].getsockname()[1]
    proxied = target.set(host="127.0.0.1", port=proxy_port, query={})
    wire = Wire(url=proxied.render_as_string(hide_password=False))
    try:
        yield wire
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        with suppress(Exception):
            await server.wait_closed()
