"""Every request observed once, around the whole app: its id, its status and its duration, counted for /metrics and
written as one log line.

One pure ASGI layer wraps the app's ASGI handler itself, outside Litestar's router and exception handling:
middleware given to Litestar runs around each route only, so the router's 404 and 405 and the authentication's 401
would never pass through it. Per request it reads the clock three times, scans the request headers once for
X-Request-ID, sets one context variable, updates a few plain counters and hands the log writer one tuple, which the
writer's thread formats (service.observability.log_writer). It does not wrap `send`: the app's one `before_send`
hook, which adds the security headers to every answer anyway, also adds the id and notes the status in the scope
(`answer_starts`); a request whose client left mid-body is noted 499 instead (`client_gone`), being no fault of the
server's. A WebSocket gets an id too, on every line written while it is open, and one line when it closes (method
WEBSOCKET, status 101 once accepted, 403 if refused at the handshake); it is not counted in the request metrics,
having neither a status nor a duration of a request.

This replaces Litestar's PrometheusMiddleware, whose per-request work cost the hot read several times the budget
for metrics and logs; the series keep the names and label values its users know
(`devdir_requests_total{method,path,status_code}`, `devdir_request_duration_seconds`,
`devdir_requests_in_progress`, the route's path template as `path`), turned into Prometheus' text format only when
/metrics is scraped by Litestar's PrometheusController (service.system.metrics). What each design cost:
docs/decisions/0002-request-observation-layer.md.

Everything here runs on the event loop's thread (the layer, and the scrape that reads the counters), so the
counters need no lock.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.observability.log_format import RequestLine, logger
from service.observability.log_writer import writer
from service.observability.request_ids import HEADER, client_id, new_id, request_id
from service.observability.request_metrics import RequestMetrics
from service.web.security_headers import secure

# Requests to these are not counted: probes and scrapes would drown the API's own figures.
UNCOUNTED = frozenset({"/metrics", "/health", "/ready"})
# Label values are bounded: any other method (a client may send any token) is counted as OTHER, and a path that
# matched no route as `unmatched`, never as itself.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
WEBSOCKET = "WEBSOCKET"  # the request line's method for a WebSocket, logged when it closes


# What the layer and the hook share through the request's scope (ASGI lets an app add keys of its own to it).
ID_KEY = "devdir.request_id"  # the (name, value) header of the request's id, set by the layer when it logs
STATUS_KEY = "devdir.status"  # the answer's status, set by the hook as the answer starts
# The status logged and counted for a request whose client left before its answer could reach it: nginx's "client
# closed request", which log readers and dashboards know as a client's doing, never the server's.
CLIENT_CLOSED = 499


def client_gone(scope: Scope) -> None:
    """The request's client has left, and its answer went nowhere: log and count it as CLIENT_CLOSED, whatever the
    app answered. Called once the app has answered, by the layer that saw the client leave
    (service.web.body_timeout)."""
    state: dict[str, Any] = scope  # type: ignore[assignment]  # the scope, keys of our own included
    state[STATUS_KEY] = CLIENT_CLOSED


async def answer_starts(message: Message, scope: Scope) -> None:
    """The app's one Litestar `before_send` hook: on the start of every HTTP answer (errors included), the security
    headers (service.web.security_headers) and the request's id, and its status noted for the layer.

    One hook does all of it because each message the app sends awaits every hook in turn: a second hook, or a send
    wrapper of the layer's own, would be one more coroutine per message of every request."""
    if message["type"] == "http.response.start":
        state: dict[str, Any] = scope  # type: ignore[assignment]  # the scope, keys of our own included
        headers = secure(message, state["path"])
        if (header := state.get(ID_KEY)) is not None:
            headers.append(header)
        state[STATUS_KEY] = message["status"]


class ObservedRequests:
    """The layer (see the module's docstring): ids and log lines when `log`, counts when `metrics`."""

    __slots__ = ("app", "log", "metrics")

    def __init__(self, app: ASGIApp, metrics: RequestMetrics | None, *, log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: dict[str, Any] = scope  # type: ignore[assignment]  # the scope, keys of our own included
        kind = state["type"]
        if kind != "http":
            if kind == "websocket" and self.log:
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        metrics, token, rid = self.metrics, None, ""
        if self.log:
            rid = client_id(scope) or new_id()
            state[ID_KEY] = (HEADER, rid.encode())
            token = request_id.set(rid)
        if metrics is not None:
            metrics.in_progress += 1
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            seconds = time.perf_counter() - started
            # 500 if the answer never started: the server then answers a bare 500.
            status: int = state.get(STATUS_KEY, 500)
            route: str | None = state.get("path_template")
            method: str = state["method"]
            if metrics is not None:
                metrics.in_progress -= 1
                if route not in UNCOUNTED:
                    metrics.observe(method if method in METHODS else "OTHER", route or UNMATCHED, status, seconds)
            if token is not None:
                if logger.isEnabledFor(logging.INFO):
                    account_id = getattr(state.get("user"), "id", None)
                    # A plain tuple, in RequestLine's order: the writer's thread makes the RequestLine.
                    writer.put((time.time(), rid, method, route, status, seconds * 1000, account_id))
                request_id.reset(token)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = client_id(scope) or new_id()
        header = (HEADER, rid.encode("ascii"))
        status = 500
        started = time.perf_counter()

        async def observed_send(message: Message) -> None:
            nonlocal status
            event: dict[str, Any] = message  # type: ignore[assignment]  # one of ASGI's messages, read as a dict
            if event["type"] == "websocket.accept":
                status = 101
                # ASGI lets the handshake answer carry headers; granian (2.x) sends none of them, other servers do.
                event["headers"] = [*event.get("headers", ()), header]
            elif event["type"] == "websocket.http.response.start":  # a denial with an answer of its own
                status = event["status"]
                event["headers"] = [*event.get("headers", ()), header]
            elif event["type"] == "websocket.close" and status == 500:
                status = 403  # closed before the handshake was accepted: the server answers 403
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, observed_send)
        finally:
            milliseconds = (time.perf_counter() - started) * 1000
            if logger.isEnabledFor(logging.INFO):
                account_id = getattr(scope.get("user"), "id", None)
                route = scope.get("path_template")
                writer.put(RequestLine(time.time(), rid, WEBSOCKET, route, status, milliseconds, account_id))
            request_id.reset(token)
