"""A request body that stops arriving is answered 408 instead of holding its slot, and its connection, forever.

granian bounds how long the request head may take, not the body. A bulk import holds a database connection, in an
open transaction, from its first valid row until its last byte: a client that stalls mid-upload would keep both
until it went away, and a few such clients would starve the pool. So while a body is incomplete, each read of it
may wait at most BODY_IDLE_TIMEOUT_SECONDS; the answer is then 408 and the transaction rolls back. Reads after the
body has ended (a streaming answer listening for the client's disconnect) are not bounded.
"""

from __future__ import annotations

import asyncio

from litestar.enums import ScopeType
from litestar.exceptions import ClientException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

WITHOUT_BODY = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class BodyIdleTimeout(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)
    # No route reads a body for these methods: they pay nothing for this layer.
    should_bypass_for_scope = staticmethod(lambda scope: scope["method"] in WITHOUT_BODY)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        complete = False

        async def receive_in_time() -> ReceiveMessage:
            nonlocal complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout(self.seconds):
                    message = await receive()
            except TimeoutError:
                raise ClientException(
                    status_code=408,
                    detail=f"the body stopped arriving for {self.seconds:g} seconds (BODY_IDLE_TIMEOUT_SECONDS); "
                    "nothing was written",
                ) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await next_app(scope, receive_in_time, send)
