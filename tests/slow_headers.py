"""Slow-header clients (slowloris): connections that send a request line and part of a header, then one more byte
every few seconds, and never end the headers. Each holds one of the server's connection slots for as long as the
server lets it; one the server closes is opened again at once, as an attacker's would be. And the measure that
matters while they run: how long a new client waits for `/health`.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

PARTIAL_REQUEST = b"GET /health HTTP/1.1\r\nHost: slow\r\nX-Slow: "
CONNECT_TIMEOUT_SECONDS = 5.0


@dataclass
class SlowHeaders:
    host: str
    port: int
    count: int
    byte_every_seconds: float = 3.0
    open: int = 0  # connections now open, headers begun
    opened: int = 0  # connections opened in all
    closed_by_server: int = 0
    all_open: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False

    async def _hold_one(self) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                reader, writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.5)  # not accepted (the server's queue is full): try again, as an attacker would
            return
        self.opened += 1
        self.open += 1
        if self.open == self.count:
            self.all_open.set()
        try:
            writer.write(PARTIAL_REQUEST)
            while not self.stopping:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.byte_every_seconds):
                        if not await reader.read(4096):
                            break  # the server closed it
                        continue  # the server answered something (an error status): it will close
                writer.write(b"a")
                await writer.drain()
            self.closed_by_server += not self.stopping
        except OSError:
            self.closed_by_server += 1  # reset by the server
        finally:
            self.open -= 1
            writer.close()

    async def _keep_one(self) -> None:
        while not self.stopping:
            await self._hold_one()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SlowHeaders]:
        """`count` slow-header connections kept open (reopened when closed) until the block ends."""
        tasks = [asyncio.create_task(self._keep_one()) for _ in range(self.count)]
        try:
            yield self
        finally:
            self.stopping = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def until_open(self, deadline_seconds: float) -> None:
        """Wait until every connection has been open at once, its headers begun (or the deadline passes)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline_seconds):
                await self.all_open.wait()


async def health_seconds(base: str, within_seconds: float) -> float | None:
    """Seconds a new client waits for a 200 from `/health` on its own connection; None if not `within_seconds`."""
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=within_seconds) as client:
            response = await client.get(f"{base}/health", headers={"Connection": "close"})
    except httpx.TransportError:
        return None
    return time.monotonic() - started if response.status_code == 200 else None


def allow_open_files(needed: int) -> int:
    """Raise this process's soft limit on open files to `needed` if the hard limit allows (its children inherit
    it); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed <= hard or (soft < needed and hard == resource.RLIM_INFINITY):
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        soft = needed
    return soft


async def seconds_until_closed(host: str, port: int, first_bytes: bytes, within_seconds: float) -> float | None:
    """Open a connection, send `first_bytes` (nothing, or the start of a request, then a byte every second), and
    return the seconds until the server closes it; None if it is still open after `within_seconds`."""
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    try:
        writer.write(first_bytes)
        while time.monotonic() - started < within_seconds:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    if not await reader.read(4096):
                        return time.monotonic() - started
            if first_bytes:
                writer.write(b"a")
                await writer.drain()
        return None
    except OSError:
        return time.monotonic() - started  # reset by the server
    finally:
        writer.close()
