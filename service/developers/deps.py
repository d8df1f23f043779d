"""The developers domain's dependencies: each service's provider, and the aliases handlers declare them with.

Registered once, on the router that mounts the developers controllers (router.py); a handler names a
dependency by its parameter (`developers_service: DevelopersServiceDep`) and Litestar builds it per request from
the request's session (`db_session`, the SQLAlchemy plugin's) or the engine.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.tickets import FeedTickets
from service.core.settings import Settings
from service.db.returning import UPDATE_ONE
from service.developers.bulk.servers import bulk_sql
from service.developers.bulk.service import DevelopersBulkService
from service.developers.events.feed import Feed
from service.developers.export.service import DeveloperExports
from service.developers.reads import DeveloperReads, PostgresReads, ReadQueries
from service.developers.reads_mariadb import MariaDBReads
from service.developers.service import DevelopersService
from service.web.consistency import ConsistencyToken, need


def reads_dependency(settings: Settings) -> Provide:
    """The hot reads of each request, as the `developer_reads` dependency, with the statements of the server
    DATABASE_URL names (chosen here, once), on a standby or the primary (service.db.routing)."""
    queries: ReadQueries = MariaDBReads() if settings.backend == "mariadb" else PostgresReads()

    def provide_developer_reads(
        request: Request[Any, Any, Any], state: State, consistency_token: ConsistencyToken = None
    ) -> DeveloperReads:
        return DeveloperReads(state["reads"], need(request, state, consistency_token), queries)

    return Provide(provide_developer_reads, sync_to_thread=False)


def service_dependency(settings: Settings) -> Provide:
    """Each request's DevelopersService, with the UPDATE of the server DATABASE_URL names (chosen here, once)."""
    update_one = UPDATE_ONE[settings.backend]

    def provide_developers_service(db_session: NamedDependency[AsyncSession]) -> DevelopersService:
        return DevelopersService(db_session, update_one)

    return Provide(provide_developers_service, sync_to_thread=False)


def provide_bulk_service(
    db_session: NamedDependency[AsyncSession], settings: NamedDependency[Settings], state: State
) -> DevelopersBulkService:
    metrics = state.get("metrics")  # service.observability.metrics.Metrics, None when METRICS_ENABLED is off
    return DevelopersBulkService(
        db_session,
        bulk_sql(settings.backend),
        max_rows=settings.bulk_max_rows,
        statement_timeout_ms=settings.bulk_statement_timeout_ms,
        metrics=None if metrics is None else metrics.bulk,
    )


# Plain functions, run in the event loop: none of them waits on anything.
DEPENDENCIES = {
    "bulk_service": Provide(provide_bulk_service, sync_to_thread=False),
}


def feed_dependency(feed: Feed) -> Provide:
    """The process's one change feed, as the `feed` dependency (app-wide: readiness reports its state too)."""

    def provide_feed() -> Feed:
        return feed

    return Provide(provide_feed, use_cache=True, sync_to_thread=False)


def exports_dependency(exports: DeveloperExports) -> Provide:
    """The process's exports, as the `developer_exports` dependency: one object, whose count of running exports
    is the process's limit (EXPORT_MAX_CONCURRENT)."""

    def provide_developer_exports() -> DeveloperExports:
        return exports

    return Provide(provide_developer_exports, use_cache=True, sync_to_thread=False)


def tickets_dependency(settings: Settings) -> Provide:
    """The feed's ticket issuer, as the `feed_tickets` dependency: built once, it holds the tickets' signing key."""
    tickets = FeedTickets(settings.secret_key, settings.events_ticket_seconds)

    def provide_feed_tickets() -> FeedTickets:
        return tickets

    return Provide(provide_feed_tickets, use_cache=True, sync_to_thread=False)


DeveloperReadsDep = NamedDependency[DeveloperReads]
DeveloperExportsDep = NamedDependency[DeveloperExports]
DevelopersServiceDep = NamedDependency[DevelopersService]
BulkServiceDep = NamedDependency[DevelopersBulkService]
FeedDep = NamedDependency[Feed]
FeedTicketsDep = NamedDependency[FeedTickets]
SettingsDep = NamedDependency[Settings]
