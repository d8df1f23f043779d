"""The application: which plugins and controllers make up the service, each built from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.plugins.problem_details import ProblemDetailsPlugin
from litestar_granian import GranianPlugin

from service.accounts import deps as accounts_deps
from service.accounts.auth import TokenIssuer, build_auth
from service.accounts.bootstrap import first_admin
from service.accounts.cli import AccountsCLIPlugin
from service.accounts.controller import AccessController, UsersController
from service.body_timeout import BodyIdleTimeout
from service.db.config import engine_disposer, sqlalchemy_config
from service.db.transaction import CommitBeforeAnswer
from service.developers import deps as developers_deps
from service.developers.bulk.controller import DevelopersBulkController
from service.developers.controller import DevelopersController
from service.developers.events.controller import EventsController
from service.developers.events.feed import Feed
from service.developers.export.controller import DevelopersExportController
from service.developers.export.service import DeveloperExports
from service.imports import deps as imports_deps
from service.imports.cli import WorkersCLIPlugin
from service.imports.controller import ImportsController, ImportSubmitController
from service.imports.worker import Worker
from service.json_body import JSONBodyRequest
from service.openapi import ExactSchemaPlugin
from service.problems import problem_details_config, problem_for
from service.request_log import logging_config
from service.settings import Settings
from service.system.health import HealthController
from service.system.instruments import WorkerMetrics
from service.system.metrics import Metrics, MetricsController
from service.system.orphans import stop_with_devdir
from service.system.requests import ObservedRequests, answer_starts
from service.system.runtime import tune_garbage_collector
from service.system.serving import ServeGuard
from service.system.traces import tracing

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor


def create_app(settings: Settings | None = None, *, span_processor: SpanProcessor | None = None) -> Litestar:
    """The service's app; `span_processor` replaces the OTLP exporter when tracing is on (tests)."""
    settings = settings or Settings.from_env()
    settings.check()

    auth = build_auth(settings)
    db = sqlalchemy_config(settings)
    # Prometheus metrics (service.system.metrics): requests by route template, the pool, the feed, 503s by kind.
    metrics = Metrics() if settings.metrics_enabled else None
    problems = problem_details_config(settings.retry_after_seconds, metrics)
    # OpenTelemetry only when OTEL_EXPORTER_OTLP_ENDPOINT is set (service.system.traces): else None, nothing added.
    traces = tracing(settings, db.get_engine(), span_processor)

    def provide_settings() -> Settings:
        return settings

    # Bulk bodies may reach BULK_MAX_BYTES; the single-row routes set their own, far lower, limit.
    # One change feed per process: a listener connection of its own, fanned out to every subscriber.
    feed = Feed(db.get_engine(), settings)
    if metrics is not None:
        metrics.watch(db.get_engine(), feed)
    # Exports stream on connections of the request pool, a few at a time per process (EXPORT_MAX_CONCURRENT).
    exports = DeveloperExports(
        db.get_engine(),
        max_concurrent=settings.export_max_concurrent,
        statement_timeout_ms=settings.export_statement_timeout_ms,
    )
    developers = Router(
        "/",
        route_handlers=[DevelopersController, DevelopersBulkController, DevelopersExportController, EventsController],
        dependencies=developers_deps.DEPENDENCIES | {"developer_exports": developers_deps.exports_dependency(exports)},
        request_max_body_size=settings.bulk_max_bytes,
    )
    # Background imports: submitted bodies may reach BULK_MAX_BYTES too; workers import them (service.imports).
    imports = Router(
        "/",
        route_handlers=[ImportSubmitController, ImportsController],
        dependencies=imports_deps.DEPENDENCIES,
        request_max_body_size=settings.bulk_max_bytes,
    )
    # A worker in this process only when asked (`devdir run` on the embedded database); else `devdir workers run`.
    # Its metrics join this app's (/metrics), the bulk rows counted once whichever path imported them.
    worker_metrics = None if metrics is None else WorkerMetrics(metrics.registry, metrics.bulk)
    worker = Worker(settings, worker_metrics) if settings.worker_in_process else None
    # Sign-in attempts are limited per client address, on the token route alone.
    sign_in_limit = RateLimitConfig(rate_limit=("minute", settings.login_attempts_per_minute))
    accounts = Router(
        "/",
        route_handlers=[
            Router("/", route_handlers=[AccessController], middleware=[sign_in_limit.middleware]),
            UsersController,
        ],
        dependencies=accounts_deps.dependencies(TokenIssuer(auth)),
    )
    app = Litestar(
        route_handlers=[developers, imports, accounts, HealthController, *([MetricsController] if metrics else [])],
        dependencies={
            "settings": Provide(provide_settings, use_cache=True, sync_to_thread=False),
            "feed": developers_deps.feed_dependency(feed),
        },
        # The bearer-token middleware and the OAuth2 password flow in the API document.
        on_app_init=[auth.on_app_init],
        # A granian worker of `devdir run` stops when `devdir` or granian's main process ends (service.system.orphans).
        on_startup=[first_admin(settings, db), tune_garbage_collector, stop_with_devdir],
        on_shutdown=[engine_disposer(db), *([traces.shutdown] if traces else [])],
        lifespan=[feed.lifespan] if worker is None else [feed.lifespan, worker.lifespan],
        state=State({"feed": feed, "worker": worker, "metrics": metrics, "exports": exports}),
        # A 2xx leaves only after its transaction has committed; a failed COMMIT is answered as its error maps.
        middleware=([traces.route_namer] if traces is not None else [])
        + [
            CommitBeforeAnswer(db.session_scope_key, problem_for(problems)),
            BodyIdleTimeout(settings.body_idle_timeout_seconds),
        ],
        # JSON bodies only as application/json (415), and 400 when not UTF-8 or nested too deeply.
        request_class=JSONBodyRequest,
        # nosniff, no referrer, no framing, a Content-Security-Policy and no-store on every answer, errors included;
        # the request's id too, when requests are logged (service.system.requests).
        before_send=[answer_starts],
        plugins=[
            SQLAlchemyPlugin(config=db),
            ProblemDetailsPlugin(problems),
            GranianPlugin(),  # `devdir run`, with granian's limits for slow clients (service.system.serving)
            ServeGuard(),  # `devdir run` refuses a port another server listens on; Ctrl-C reaches granian as SIGTERM
            AccountsCLIPlugin(),
            WorkersCLIPlugin(),
            ExactSchemaPlugin(),  # the API document states integer bounds and closed bodies exactly
            *([traces.plugin] if traces is not None else []),  # its middleware wraps the whole app
        ],
        openapi_config=OpenAPIConfig(
            title="Developer directory",
            version="1.0.0",
            description=(
                "Developers, listed by specialty in name order, with keyset pagination. Every /api route but the "
                "token route needs a bearer token: sign in at /api/access/token (Authorize, in the UI)."
            ),
            path="/schema",
            # The API document is public, like the probes: its routes opt out of auth where they are declared.
            openapi_router=Router(
                "/schema", route_handlers=[], include_in_schema=False, opt={"exclude_from_auth": True}
            ),
            render_plugins=[SwaggerRenderPlugin(), ScalarRenderPlugin()],
        ),
        # JSON lines (LOG_FORMAT=json) or human-readable ones, each with the request id of the request it is about.
        logging_config=logging_config(settings.log_format),
        debug=settings.debug,
    )
    # Request ids, counts and log lines, outside Litestar's router and exception handling, so that 404s, 405s and
    # 401s are seen too, with the status the client is sent (service.system.requests).
    if metrics is not None or settings.log_requests:
        app.asgi_handler = ObservedRequests(
            app.asgi_handler, None if metrics is None else metrics.requests, log=settings.log_requests
        )
    return app
