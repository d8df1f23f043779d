"""The service, whose metrics and request logs the read benchmark switches off and on while it runs, so that their
cost is measured within one process.

    granian --interface asgi tests.bench.switch_app:app     (DATABASE_URL and SECRET_KEY from the environment)

`GET /observing?on=1` (or `on=0`) switches; the answer says the state. Off, a request goes straight past the
observing layer (service.web.requests) to the app it wraps, and the pool's checkout wait is not timed: the
requests take the very path of a service started with METRICS_ENABLED=false LOG_REQUESTS=false. The app's one
`before_send` hook (security headers) runs either way, as it does in that service. Two processes of the same code
differ here by up to 10% in requests/s for as long as they live, more than what is measured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.types import ASGIApp, Receive, Scope, Send

from service.app import create_app
from service.db.pool import ReadyFirstPool
from service.observability.metrics import Metrics
from service.web.requests import ObservedRequests

SWITCH = "/observing"


class Switch:
    """In place of the app's ASGI handler: the observing layer, or the app behind it."""

    def __init__(self, observed: ObservedRequests, metrics: Metrics) -> None:
        self.observed: ASGIApp = observed
        self.bare: ASGIApp = observed.app
        self.metrics = metrics
        self.on = True
        self.wait_observer: Callable[[float], None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == SWITCH:
            self.switch(scope["query_string"] == b"on=1")
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"on" if self.on else b"off"})
            return
        await (self.observed if self.on else self.bare)(scope, receive, send)

    def switch(self, on: bool) -> None:
        engine = self.metrics.engine
        assert engine is not None
        pool = engine.sync_engine.pool
        assert isinstance(pool, ReadyFirstPool)
        if self.wait_observer is None:
            self.wait_observer = pool.wait_observer
        pool.wait_observer = self.wait_observer if on else None
        self.on = on


app: Any = create_app()
assert isinstance(app.asgi_handler, ObservedRequests), "the service observes its requests by default"
app.asgi_handler = Switch(app.asgi_handler, app.state["metrics"])
