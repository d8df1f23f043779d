"""The application: which plugins and which domain routers make up the service, each built from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins.problem_details import ProblemDetailsPlugin
from litestar_granian import GranianPlugin

from service.accounts.auth import build_auth
from service.accounts.bootstrap import first_admin
from service.accounts.cli import users_group
from service.accounts.router import router as accounts_router
from service.core.settings import Settings
from service.db.config import engine_disposer, replica_engine, sqlalchemy_config
from service.db.consistency import Consistency
from service.db.replicas import ReplicaLag
from service.db.routing import ReadRouter, Replica
from service.developers.deps import feed_dependency
from service.developers.events.feed import Feed
from service.developers.export.mariadb import MariaDBExports
from service.developers.export.service import DeveloperExports
from service.developers.export.streams import Exports
from service.developers.router import router as developers_router
from service.imports.cli import workers_group
from service.imports.router import router as imports_router
from service.imports.worker import Worker
from service.observability.instruments import WorkerMetrics
from service.observability.log_writer import logging_config
from service.observability.metrics import Metrics
from service.observability.traces import tracing
from service.system.orphans import stop_with_devdir
from service.system.router import router as system_router
from service.system.runtime import tune_garbage_collector
from service.system.serving import ServeGuard
from service.web.body_timeout import BodyArrival
from service.web.cli import CommandGroup
from service.web.consistency import DEPENDENCIES as consistency_dependencies
from service.web.cors import cors_config
from service.web.json_body import JSONBodyRequest
from service.web.openapi import ExactSchemaPlugin, api_document
from service.web.problems import problem_details_config, problem_for
from service.web.request_body import StreamedUploads
from service.web.requests import ObservedRequests, answer_starts
from service.web.transaction import CommitBeforeAnswer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor


def create_app(settings: Settings | None = None, *, span_processor: SpanProcessor | None = None) -> Litestar:
    """The service's app; `span_processor` replaces the OTLP exporter when tracing is on (tests)."""
    settings = settings or Settings.from_env()
    settings.check()

    auth = build_auth(settings)
    db = sqlalchemy_config(settings)
    # Prometheus metrics (service.observability.metrics): requests by route template, the pool, the feed, 503s by kind.
    metrics = Metrics() if settings.metrics_enabled else None
    problems = problem_details_config(settings.retry_after_seconds, metrics)
    # OpenTelemetry only when OTEL_EXPORTER_OTLP_ENDPOINT is set (service.observability.traces): else None, nothing
    # added.
    traces = tracing(settings, db.get_engine(), span_processor)
    # One change feed per process: a listener connection of its own, fanned out to every subscriber (built below,
    # with the reads' router: its replays may run on a standby).
    # The hot standbys of DATABASE_REPLICA_URLS, their replay lag watched in the background (none when it is empty),
    # each with a pool of its own for the reads sent there (service.db.routing).
    replicas = ReplicaLag(settings) if settings.replica_urls else None
    standbys = (
        [
            Replica(standby, replica_engine(settings, url))
            for standby, url in zip(replicas.standbys, settings.replica_urls, strict=True)
        ]
        if replicas is not None
        else []
    )
    if metrics is not None and standbys:
        metrics.watch_retries(replica.standby.name for replica in standbys)
    reads = ReadRouter(
        db.get_engine(),
        standbys,
        replicas,
        count=None if metrics is None else metrics.count_read,
        retried=None if metrics is None or not standbys else metrics.count_retry,
    )
    # Consistency-Tokens, and each account's last write in this process (service.db.consistency).
    consistency = Consistency(settings.secret_key, settings.db_replica_max_lag_ms / 1000)
    feed = Feed(db.get_engine(), settings, reads)
    if metrics is not None:
        metrics.watch(db.get_engine(), feed)
        if replicas is not None:
            metrics.watch_replicas(replicas)
    # Exports stream on connections of the request pool (or a standby's), a few at a time per process
    # (EXPORT_MAX_CONCURRENT): PostgreSQL's COPY, or MariaDB's server-side cursor.
    exports: Exports = (
        MariaDBExports(
            db.get_engine(),
            max_concurrent=settings.export_max_concurrent,
            statement_timeout_ms=settings.export_statement_timeout_ms,
            idle_timeout_seconds=settings.export_idle_timeout_seconds,
        )
        if settings.backend == "mariadb"
        else DeveloperExports(
            reads,
            max_concurrent=settings.export_max_concurrent,
            statement_timeout_ms=settings.export_statement_timeout_ms,
        )
    )
    # Bulk imports and import submissions stream their bodies on connections of the request pool, a few at a time
    # per process (BULK_MAX_CONCURRENT).
    uploads = StreamedUploads(settings.bulk_max_concurrent)
    # A worker in this process only when asked (`devdir run` on the embedded database); else `devdir workers run`.
    # Its metrics join this app's (/metrics), the bulk rows counted once whichever path imported them.
    worker_metrics = None if metrics is None else WorkerMetrics(metrics.registry, metrics.bulk)
    worker = Worker(settings, worker_metrics) if settings.worker_in_process else None

    def provide_settings() -> Settings:
        return settings

    app = Litestar(
        # Each domain's router brings its controllers, dependencies and body size limit.
        route_handlers=[
            developers_router(settings, exports),
            imports_router(settings),
            accounts_router(settings, auth),
            system_router(metrics),
        ],
        dependencies={
            "settings": Provide(provide_settings, use_cache=True, sync_to_thread=False),
            "feed": feed_dependency(feed),
            "streamed_uploads": uploads.dependency(),
            # What a request's reads must see, and the ORM reads that may run on a standby (service.web.consistency).
            **consistency_dependencies,
        },
        # The bearer-token middleware and the OAuth2 password flow in the API document.
        on_app_init=[auth.on_app_init],
        # A granian worker of `devdir run` stops when `devdir` or granian's main process ends (service.system.orphans).
        on_startup=[first_admin(settings, db), tune_garbage_collector, stop_with_devdir],
        on_shutdown=[engine_disposer(db), reads.dispose, *([traces.shutdown] if traces else [])],
        lifespan=[
            feed.lifespan,
            *([worker.lifespan] if worker is not None else []),
            *([replicas.lifespan] if replicas is not None else []),
        ],
        state=State(
            {
                "feed": feed,
                "worker": worker,
                "metrics": metrics,
                "exports": exports,
                "replicas": replicas,
                "reads": reads,
                "consistency": consistency,
            }
        ),
        # A 2xx leaves only after its transaction has committed; a failed COMMIT is answered as its error maps. A body
        # that stalls or trickles is 408, one cut short 400 (service.web.body_timeout).
        middleware=([traces.route_namer] if traces is not None else [])
        + [
            CommitBeforeAnswer(db.session_scope_key, problem_for(problems), consistency if standbys else None),
            BodyArrival(settings.body_idle_timeout_seconds, settings.body_min_bytes_per_second),
        ],
        # JSON bodies only as application/json (415), and 400 when not UTF-8 or nested too deeply.
        request_class=JSONBodyRequest,
        # Pages of CORS_ALLOW_ORIGINS may call the API with a bearer token (none when empty: service.web.cors).
        cors_config=cors_config(settings.allowed_origins),
        # nosniff, no referrer, no framing, a Content-Security-Policy and no-store on every answer, errors included;
        # the request's id too, when requests are logged (service.web.requests).
        before_send=[answer_starts],
        plugins=[
            SQLAlchemyPlugin(config=db),
            ProblemDetailsPlugin(problems),
            GranianPlugin(),  # `devdir run`, with granian's limits for slow clients (service.system.serving)
            ServeGuard(),  # `devdir run` refuses a port another server listens on; Ctrl-C reaches granian as SIGTERM
            CommandGroup(users_group),
            CommandGroup(workers_group),
            ExactSchemaPlugin(),  # the API document states integer bounds and closed bodies exactly
            *([traces.plugin] if traces is not None else []),  # its middleware wraps the whole app
        ],
        openapi_config=api_document(),
        # JSON lines (LOG_FORMAT=json) or human-readable ones, each with the request id of the request it is about.
        logging_config=logging_config(settings.log_format),
        debug=settings.debug,
    )
    # Request ids, counts and log lines, outside Litestar's router and exception handling, so that 404s, 405s and
    # 401s are seen too, with the status the client is sent (service.web.requests).
    if metrics is not None or settings.log_requests:
        app.asgi_handler = ObservedRequests(
            app.asgi_handler, None if metrics is None else metrics.requests, log=settings.log_requests
        )
    return app
