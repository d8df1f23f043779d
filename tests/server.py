"""An app served over real sockets by granian, in the test's own event loop: for streams (SSE, WebSocket), which
an in-process ASGI client would buffer whole."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
from granian.constants import Interfaces
from granian.server.embed import Server
from litestar import Litestar


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def served(app: Litestar) -> AsyncIterator[str]:
    """The app served at the URL this yields (lifespan included) until the block ends."""
    port = free_port()
    server = Server(app, address="127.0.0.1", port=port, interface=Interfaces.ASGI, log_enabled=False)
    serving = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health")).status_code == 200:
                        break
                await asyncio.sleep(0.025)
            else:
                raise RuntimeError(f"the app did not start serving at {url}")
        yield url
    finally:
        server.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(serving, 10)
