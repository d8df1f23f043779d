"""Traces: with OTEL_EXPORTER_OTLP_ENDPOINT set, a server span per request named by route template, SQL spans from
SQLAlchemy beneath it; with it empty, no span and none of the OpenTelemetry SDK loaded."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service.app import create_app
from service.core.settings import Settings
from tests.client import serve
from tests.database import empty
from tests.developers.api import create
from tests.processes import environment

ONE = "/api/developers/{developer_id}"
COLLECTION = "/api/developers"


def traced_settings(settings: Settings, endpoint: str) -> Settings:
    fields = {name: getattr(settings, name) for name in settings.__struct_fields__}
    return Settings(**fields | {"otel_exporter_otlp_endpoint": endpoint})


@pytest.fixture
async def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


async def built(settings: Settings, exporter: InMemorySpanExporter, database_url: str) -> Litestar:
    await empty(database_url, "developers", "users")
    return create_app(settings, span_processor=SimpleSpanProcessor(exporter))


@pytest.fixture
async def traced(settings: Settings, exporter: InMemorySpanExporter, database_url: str) -> AsyncIterator[Litestar]:
    # Nothing listens there: the in-memory exporter stands in for the OTLP one.
    app = await built(traced_settings(settings, "http://127.0.0.1:9"), exporter, database_url)
    yield app
    await app.state.feed.engine.dispose()


def servers(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [span for span in spans if span.kind == SpanKind.SERVER]


def children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [span for span in spans if span.parent is not None and span.parent.span_id == parent.context.span_id]


async def test_requests_and_sql_are_traced(traced: Litestar, exporter: InMemorySpanExporter) -> None:
    async with serve(traced) as client:
        created = await create(client, name="Ada", email="ada@example.com", specialty="math")
        posted = exporter.get_finished_spans()
        exporter.clear()
        response = await client.get(f"/api/developers/{created['id']}")
        assert response.status_code == 200, response.text
        got = exporter.get_finished_spans()
        exporter.clear()
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/api/developers/nonexistent/path/here")).status_code == 404
        unrouted = exporter.get_finished_spans()

    [post] = servers(posted)
    assert post.name == f"POST {COLLECTION}"
    assert post.attributes is not None
    assert post.attributes["http.route"] == COLLECTION
    assert post.resource.attributes["service.name"] == "devdir"
    sql = children(posted, post)
    assert sql, [span.name for span in posted]
    assert all(span.kind == SpanKind.CLIENT for span in sql)
    statements = [str((span.attributes or {}).get("db.statement", "")) for span in sql]
    assert any(statement.startswith("INSERT INTO developers") for statement in statements), statements
    # One span per statement: SQLAlchemy's engine is instrumented, asyncpg is not (it would add a second).
    assert len(sql) == len(posted) - 1

    # The hot read runs on the pooled asyncpg connection directly, under SQLAlchemy: its request is traced, with
    # the route template, but it has no SQL span.
    [read] = servers(got)
    assert read.name == f"GET {ONE}"
    assert read.attributes is not None
    assert read.attributes["http.route"] == ONE
    assert children(got, read) == []
    assert len(got) == 1

    # The probe is not traced; a path that matches no route is named by its method alone, never by the raw path.
    [miss] = servers(unrouted)
    assert miss.name == "GET"
    assert "http.route" not in (miss.attributes or {})


async def test_no_endpoint_no_spans(settings: Settings, exporter: InMemorySpanExporter, database_url: str) -> None:
    app = await built(settings, exporter, database_url)
    try:
        async with serve(app) as client:
            created = await create(client, name="Ada", email="ada@example.com", specialty="math")
            assert (await client.get(f"/api/developers/{created['id']}")).status_code == 200
    finally:
        await app.state.feed.engine.dispose()
    assert exporter.get_finished_spans() == ()
    assert not any(type(plugin).__name__ == "OpenTelemetryPlugin" for plugin in app.plugins)


# Builds an app with tracing off in a fresh interpreter and lists what of OpenTelemetry it loaded. Litestar's own
# constructor imports its OpenTelemetry plugin module (the API and ASGI instrumentation) when the package is
# installed; the SDK, the exporter and the SQLAlchemy instrumentation are ours to import, and must not be.
PROBE = """
import sys
from service.app import create_app
from service.core.settings import Settings
create_app(Settings(database_url="postgresql://nobody@127.0.0.1:1/none", secret_key="x" * 40))
print(" ".join(sorted(name for name in sys.modules if name.startswith("opentelemetry"))))
"""


@pytest.mark.slow
def test_no_endpoint_loads_no_sdk() -> None:
    env = {k: v for k, v in environment().items() if k != "OTEL_EXPORTER_OTLP_ENDPOINT"}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.split()
    for ours in ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation.sqlalchemy"):
        assert not [name for name in loaded if name == ours or name.startswith(ours + ".")], loaded
