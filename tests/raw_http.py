"""HTTP/1.1 over a raw socket, for what an HTTP client library will not send: broken chunked bodies, bodies shorter
than their Content-Length, uploads that trickle a byte now and then."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """One answer, read whole: its head, then its body by Content-Length (what granian sends for a problem)."""
    status_line = await reader.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in {b"\r\n", b""}:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(int(status_line.split()[1]), headers, body)


async def exchange(port: int, request: bytes, *, deadline: float = 30) -> Answer:
    """Send `request` as is on a new connection and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(read_answer(reader), deadline)
    finally:
        writer.close()


async def send_and_close(port: int, request: bytes) -> None:
    """Send `request` and go away without reading anything."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


@dataclass
class SlowUpload:
    """A chunked upload that sends `start` at once, then one byte (`trickle`) every `interval` seconds until it is
    answered: the client of a slow-upload attack."""

    port: int
    path: str
    headers: dict[str, str]
    start: bytes
    interval: float
    trickle: bytes = b"\n"
    answer: Answer | None = None
    seconds: float = 0.0  # from the first byte sent to the answer
    trickled: int = 0  # bytes sent after `start`
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def begin(self) -> SlowUpload:
        self._task = asyncio.create_task(self._run())
        return self

    async def answered(self, within: float) -> Answer:
        assert self._task is not None
        await asyncio.wait_for(asyncio.shield(self._task), within)
        assert self.answer is not None
        return self.answer

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        reading = asyncio.create_task(read_answer(reader))
        try:
            writer.write(head("POST", self.path, self.headers | {"Transfer-Encoding": "chunked"}))
            started = time.monotonic()
            writer.write(chunk(self.start))
            await writer.drain()
            while not (await asyncio.wait([reading], timeout=self.interval))[0]:
                with contextlib.suppress(ConnectionError):  # the server may stop reading once it has answered
                    writer.write(chunk(self.trickle))
                    await writer.drain()
                    self.trickled += len(self.trickle)
            self.answer = reading.result()
            self.seconds = time.monotonic() - started
        finally:
            reading.cancel()
            writer.close()
