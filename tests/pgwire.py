"""A proxy in front of the test PostgreSQL that counts what the database receives: connections and round trips.

Counting at the wire, not in SQLAlchemy's events, sees everything the driver sends: the BEGIN and ROLLBACK of a
pre-ping, a COMMIT, an asyncpg statement preparation. A round trip is a message the client then waits on: a
simple Query ('Q'), or the Sync ('S') that ends an extended-protocol exchange (Parse/Bind/Execute/...). The
proxy refuses TLS (answers 'N' to an SSLRequest) so that it can read the messages.

The change feed's own connection (application_name 'devdir change feed', outside the request pool) is passed
through uncounted, in `feed_connections` only: it reads the outbox whenever a write commits, which is not a
round trip of the request.
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
FEED_APPLICATION = b"devdir change feed"


@dataclass
class Wire:
    url: str  # the same database, through the proxy
    connections: int = 0
    messages: Counter[bytes] = field(default_factory=Counter)
    statements: list[str] = field(default_factory=list)  # the SQL of each Query and Parse
    feed_connections: int = 0  # connections of the change feed's listener, not counted above

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
    wire: Wire, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: asyncio.StreamWriter
) -> None:
    with suppress(asyncio.IncompleteReadError, ConnectionError):
        startup = await _startup(reader, writer)
        upstream.write(startup)
        # StartupMessage: length, protocol version, then NUL-terminated names and values.
        parameters = startup[8:].split(b"\0")
        if FEED_APPLICATION in parameters[1::2]:
            wire.feed_connections += 1
            await _forward(Wire(url=wire.url), reader, upstream)
            return
        wire.connections += 1
        await _forward(wire, reader, upstream)


async def _forward(wire: Wire, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter) -> None:
    while True:
        header = await reader.readexactly(5)
        kind, length = header[:1], struct.unpack("!i", header[1:])[0]
        body = await reader.readexactly(length - 4)
        wire.messages[kind] += 1
        if kind == b"Q":
            wire.statements.append(body[:-1].decode())
        elif kind == b"P":
            wire.statements.append(body.split(b"\0", 2)[1].decode())
        upstream.write(header + body)
        await upstream.drain()


async def _server_to_client(upstream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with suppress(ConnectionError):
        while data := await upstream.read(65536):
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
        pumps = [
            asyncio.ensure_future(_client_to_server(wire, reader, writer, up_writer)),
            asyncio.ensure_future(_server_to_client(up_reader, writer)),
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
