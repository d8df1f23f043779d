"""Every request observed once, around the whole app: its id, its status and its duration, counted for /metrics
and written as one log line.

One pure ASGI layer wraps the app's ASGI handler itself, outside Litestar's router and exception handling:
middleware given to Litestar runs around each route only, so the router's 404 and 405 and the authentication's
401 would never pass through it. Per request it reads the clock twice, scans the request headers once for
X-Request-ID, sets one context variable, appends one header to the answer, updates a few plain counters and hands
the log writer one tuple (service.request_log). A WebSocket gets an id too, on every line written while it is
open, and one line when it closes (method WEBSOCKET, status 101 once accepted, 403 if refused at the handshake);
it is not counted in the request metrics, having neither a status nor a duration of a request.

Why not Litestar's PrometheusMiddleware, which /metrics used to be fed by: per request it builds a Request and its
URL, matches the exclusions' regexes, and updates four prometheus_client series, each through `labels()`, a lock
and a linear bucket search. On the read benchmark (GET /api/developers/{id}, one granian worker) it cost 22% of
the service's requests/s, against a budget of 5% for metrics and logs together. The series here keep the names
and label values a Prometheus user of that middleware knows (`devdir_requests_total{method,path,status_code}`,
`devdir_request_duration_seconds`, `devdir_requests_in_progress`, the route's path template as `path`), and are
turned into Prometheus' text format only when /metrics is scraped. Litestar's PrometheusController still serves
them (service.system.metrics).

Everything here runs on the event loop's thread (the layer, and the scrape that reads the counters), so the
counters need no lock.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from service.request_log import HEADER, RequestLine, client_id, logger, new_id, request_id, writer
from service.system.instruments import PREFIX

# Seconds, for the request duration histogram: hot reads answer in about a millisecond, bulk imports in minutes.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Requests to these are not counted: probes and scrapes would drown the API's own figures.
UNCOUNTED = frozenset({"/metrics", "/health", "/ready"})
# Label values are bounded: any other method (a client may send any token) is counted as OTHER, and a path that
# matched no route as `unmatched`, never as itself.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
WEBSOCKET = "WEBSOCKET"  # the request line's method for a WebSocket, logged when it closes


class RequestMetrics(Collector):
    """Requests by method, path template and status: a count, a duration histogram, and those in progress."""

    def __init__(self) -> None:
        # (method, path, status) -> [count, sum of seconds, then one count per bucket, the last one +Inf]
        self.series: dict[tuple[str, str, int], list[float]] = {}
        self.in_progress = 0

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        key = (method, path, status)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = [0.0] * (len(DURATION_BUCKETS) + 3)
        series[0] += 1
        series[1] += seconds
        series[2 + bisect_left(DURATION_BUCKETS, seconds)] += 1

    def collect(self) -> Iterable[Metric]:
        labels = ["method", "path", "status_code"]
        total = CounterMetricFamily(f"{PREFIX}_requests", "Requests answered, by route template", labels=labels)
        duration = HistogramMetricFamily(
            f"{PREFIX}_request_duration_seconds",
            "Seconds from a request's arrival to its answer's last byte, by route template",
            labels=labels,
        )
        bounds = [*(str(bound) for bound in DURATION_BUCKETS), "+Inf"]
        for (method, path, status), series in sorted(self.series.items()):
            values = [method, path, str(status)]
            total.add_metric(values, series[0])
            cumulative, buckets = 0.0, []
            for bound, count in zip(bounds, series[2:], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            duration.add_metric(values, buckets, sum_value=series[1])
        yield total
        yield duration
        doc = "HTTP requests being served now, this scrape included"
        yield GaugeMetricFamily(f"{PREFIX}_requests_in_progress", doc, self.in_progress)


class ObservedRequests:
    """The layer (see the module's docstring): ids and log lines when `log`, counts when `metrics`."""

    __slots__ = ("app", "log", "metrics")

    def __init__(self, app: ASGIApp, metrics: RequestMetrics | None, *, log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            if scope["type"] == ScopeType.WEBSOCKET and self.log:
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        log, metrics = self.log, self.metrics
        rid = (client_id(scope) or new_id()) if log else ""
        header = (HEADER, rid.encode("ascii"))
        status = 500  # if nothing was sent: the server answers a bare 500
        started = time.perf_counter()

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if log:
                    message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        if metrics is not None:
            metrics.in_progress += 1
        token = request_id.set(rid) if log else None
        try:
            await self.app(scope, receive, observed_send)
        finally:
            seconds = time.perf_counter() - started
            route: str | None = scope.get("path_template")
            method = scope["method"]
            if metrics is not None:
                metrics.in_progress -= 1
                if route not in UNCOUNTED:
                    metrics.observe(method if method in METHODS else "OTHER", route or UNMATCHED, status, seconds)
            if token is not None:
                if logger.isEnabledFor(logging.INFO):
                    account_id = getattr(scope.get("user"), "id", None)
                    writer.put(RequestLine(time.time(), rid, method, route, status, seconds * 1000, account_id))
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
