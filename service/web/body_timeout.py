"""How a request body must arrive: without long pauses, fast enough, and whole. Anything else is a 4xx answer, with
nothing written; never a 500, never a connection held for as long as a client likes.

granian bounds how long the request head may take, not the body. A bulk import holds a database connection, in an
open transaction, from its first valid row until its last byte (an import submission from its first byte): a
client that stalls, or trickles a byte now and then, would keep both. So while a body is incomplete:
- each read of it may wait at most BODY_IDLE_TIMEOUT_SECONDS (408);
- the reads of the whole body may wait BODY_IDLE_TIMEOUT_SECONDS in all, plus one second per
  BODY_MIN_BYTES_PER_SECOND bytes received (408): a client that is never idle for long but sends next to nothing
  is cut as surely. Only the time spent waiting for the client counts: a server slow to read (a COPY waiting on a
  lock) leaves the bytes piling up in the socket, and its reads then wait for nothing.
The answer is then sent at once, and the transaction rolls back. Reads after the body has ended (a streaming
answer listening for the client's disconnect) are not bounded.

A body that ends before it is complete is 400. granian (2.x) hands the app the same `http.disconnect` whether the
client closed the connection mid-body or sent a chunked encoding it cannot parse (`ZZ\\r\\n`), and Litestar would
make that a 500 with a traceback (InternalServerException). Either way the client is at fault, and every route
with a body is covered here, whatever reads it (JSON, the sign-in form, the streamed imports). When the body had
a Content-Length, only the end of the connection can cut it short (HTTP/1.1 reads such a body to its length), so
nobody receives the answer: the request is logged and counted as 499, nginx's "client closed request", a client
error on every dashboard (service.web.requests). A cut chunked body cannot be told from a malformed one, and
is logged as the 400 it is answered.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.exceptions import ClientException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from service.web.requests import client_gone

WITHOUT_BODY = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
ENDED_EARLY = (
    "the body ended before it was complete: the client disconnected, or its chunked encoding is malformed; "
    "nothing was written"
)


class BodyArrival(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)
    # No route reads a body for these methods: they pay nothing for this layer.
    should_bypass_for_scope = staticmethod(lambda scope: scope["method"] in WITHOUT_BODY)

    def __init__(self, idle_seconds: float, min_bytes_per_second: float) -> None:
        self.idle_seconds = idle_seconds
        self.min_rate = min_bytes_per_second  # 0: no minimum

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        body = _Arrival(self, receive)
        try:
            await next_app(scope, body.receive, send)
        finally:
            if body.cut and _sized(scope):
                client_gone(scope)

    def too_slow(self, seconds: float, received: int, *, idle: bool) -> ClientException:
        if idle:
            why = f"the body stopped arriving for {self.idle_seconds:g} seconds (BODY_IDLE_TIMEOUT_SECONDS)"
        else:
            why = (
                f"the body arrived too slowly: {received} bytes in {seconds:.0f} seconds of waiting for it, under "
                f"{self.min_rate:g} bytes a second (BODY_MIN_BYTES_PER_SECOND) beyond the first "
                f"{self.idle_seconds:g} seconds (BODY_IDLE_TIMEOUT_SECONDS)"
            )
        return ClientException(status_code=408, detail=f"{why}; nothing was written")


class _Arrival:
    """One request's body as it arrives, and the `receive` the app reads it with."""

    __slots__ = ("budget", "complete", "cut", "layer", "received", "upstream", "waited")

    def __init__(self, layer: BodyArrival, upstream: Receive) -> None:
        self.layer = layer
        self.upstream = upstream
        self.complete = False  # the last piece has arrived: reads are no longer bounded
        self.cut = False  # the connection ended before the last piece
        self.received = 0
        self.waited = 0.0  # seconds the reads have waited for the client
        # Seconds the reads may still wait in all; each byte received adds 1 / BODY_MIN_BYTES_PER_SECOND.
        self.budget = layer.idle_seconds if layer.min_rate else float("inf")

    async def receive(self) -> ReceiveMessage:
        if self.complete:
            return await self.upstream()
        layer = self.layer
        wait = min(layer.idle_seconds, self.budget)
        started = time.monotonic()
        try:
            async with asyncio.timeout(wait):
                message = await self.upstream()
        except TimeoutError:
            waited = self.waited + time.monotonic() - started
            raise layer.too_slow(waited, self.received, idle=wait == layer.idle_seconds) from None
        waited = time.monotonic() - started
        self.waited += waited
        if message["type"] != "http.request":  # http.disconnect: the body ends here, unfinished
            self.complete = self.cut = True
            raise ClientException(detail=ENDED_EARLY)
        size = len(message.get("body", b""))
        self.received += size
        if layer.min_rate:
            self.budget += size / layer.min_rate - waited
        self.complete = not message.get("more_body", False)
        return message


def _sized(scope: Scope) -> bool:
    headers: Any = scope["headers"]
    return any(name == b"content-length" for name, _ in headers)
