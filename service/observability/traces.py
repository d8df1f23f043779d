"""Traces, off by default: OpenTelemetry spans for requests and SQL when OTEL_EXPORTER_OTLP_ENDPOINT is set.

With the setting empty `tracing()` returns None and the app adds nothing: no middleware, no SQLAlchemy event
listener, no tracer provider, and none of the OpenTelemetry SDK, exporter or SQLAlchemy instrumentation is imported
(the imports below are inside the function). Litestar itself imports its own OpenTelemetry plugin module, and with
it the OpenTelemetry API and ASGI instrumentation, whenever an app is built and the package is installed; that
costs a little start-up time and nothing per request.

With it set:
- every HTTP request gets a server span from Litestar's OpenTelemetry plugin, named `GET /api/developers/{id}`
  after the route's path template (set once the request is routed; a request that matches no route keeps the
  method alone), with the template as `http.route`: never the raw path, whose ids would make every name unique.
  The per-message ASGI send/receive spans are left out. The probes and /metrics are not traced.
- the app's SQLAlchemy engine is instrumented once: a span per statement run through SQLAlchemy (the ORM and
  Core paths: writes, lists, imports), child of the request's span. asyncpg is deliberately not instrumented as
  well: every statement would then be traced twice, once by each layer. The hot reads
  (service.developers.reads) run on the pooled asyncpg connection directly, under SQLAlchemy, so they show as
  the request's span alone, with no SQL span.
- a feed ticket (`?ticket=`, service.accounts.tickets) never reaches a span: the ASGI instrumentation records the
  URL with its query string (`http.url`, or `url.query`), and every value of a `ticket` parameter in those is
  replaced with `REDACTED` as the span starts (`redact_tickets`).
- spans go to a TracerProvider of the app's own (service.name "devdir") through a BatchSpanProcessor to the OTLP
  HTTP exporter at `<endpoint>/v1/traces`; app shutdown flushes and closes it. The provider is not made the
  process's global one, so a process may build several apps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncEngine

from service.core.settings import Settings

if TYPE_CHECKING:
    from litestar.plugins.opentelemetry import OpenTelemetryPlugin
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Span

SERVICE_NAME = "devdir"
UNTRACED = ["^/health$", "^/ready$", "^/metrics$"]
SECRET_PARAMETERS = frozenset({"ticket"})
REDACTED = "REDACTED"


def redact_tickets(span: Span, scope: dict[str, Any]) -> None:
    """The server span's attributes without the value of any `ticket` in the query string, as sent (percent-encoded)
    or decoded: the instrumentation records both forms. Costs a bytes search on requests without one."""
    query: bytes = scope.get("query_string", b"")
    if b"=" not in query or not span.is_recording():
        return
    secrets: set[str] = set()
    for pair in query.decode("latin-1").split("&"):
        key, _, value = pair.partition("=")
        if unquote(key.replace("+", " ")) in SECRET_PARAMETERS and value:
            secrets |= {value, unquote(value), unquote(value.replace("+", " "))}
    if not secrets:
        return
    recorded = getattr(span, "attributes", None) or {}
    for name, attribute in list(recorded.items()):
        if isinstance(attribute, str) and any(secret in attribute for secret in secrets):
            for secret in sorted(secrets, key=len, reverse=True):
                attribute = attribute.replace(secret, REDACTED)
            span.set_attribute(name, attribute)


@dataclass(frozen=True)
class Tracing:
    """What the app adds when tracing is on: the plugin, the middleware that names spans, the shutdown hook."""

    plugin: OpenTelemetryPlugin
    route_namer: Callable[[ASGIApp], ASGIApp]
    provider: TracerProvider

    async def shutdown(self, _: Any = None) -> None:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        # The instrumentor is one per process: releasing it lets an app built later in this process (tests)
        # instrument its own engine.
        SQLAlchemyInstrumentor().uninstrument()
        self.provider.shutdown()  # flushes the spans still queued


def tracing(settings: Settings, engine: AsyncEngine, processor: SpanProcessor | None = None) -> Tracing | None:
    """None when OTEL_EXPORTER_OTLP_ENDPOINT is empty; else tracing for an app on `engine`.

    `processor` replaces the batch processor and OTLP exporter (tests pass one around an in-memory exporter).
    """
    if not settings.otel_exporter_otlp_endpoint:
        return None
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
    from opentelemetry import trace
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE

    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    if processor is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))
    provider.add_span_processor(processor)

    # SQLAlchemy's engine only, once; not asyncpg too, which would trace every statement a second time.
    # The instrumentation declares sqlalchemy < 2.1 and would refuse 2.1 without a word beyond a log line; the
    # engine events it listens to are unchanged in 2.1 (tests/system/test_traces.py checks the spans).
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, tracer_provider=provider, skip_dep_check=True)

    def method_only(scope: Scope) -> tuple[str, dict[str, Any]]:
        # The request is not routed yet when its span starts: the name gets its route template in route_namer.
        return str(scope.get("method", scope["type"])), {}

    def route_namer(app: ASGIApp) -> ASGIApp:
        async def name_span(scope: Scope, receive: Receive, send: Send) -> None:
            template = scope.get("path_template")
            span = trace.get_current_span()
            if template and span.is_recording():
                span.update_name(f"{scope.get('method', scope['type'])} {template}")
                span.set_attribute(HTTP_ROUTE, template)
            await app(scope, receive, send)

        return name_span

    config = OpenTelemetryConfig(
        tracer_provider=provider,
        scope_span_details_extractor=method_only,
        exclude=UNTRACED,
        exclude_spans=["receive", "send"],
        scopes={ScopeType.HTTP},
        server_request_hook_handler=redact_tickets,
    )
    return Tracing(plugin=OpenTelemetryPlugin(config), route_namer=route_namer, provider=provider)
