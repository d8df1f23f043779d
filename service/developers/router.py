"""The developers domain's routes: single-row, bulk, export and change-feed controllers, with their dependencies.

One router, so that controllers sharing a path (`/api/developers`) bring one OPTIONS handler for it
(service.web.controller). Its body size limit is BULK_MAX_BYTES, for the bulk routes and the batch update; the
single-row routes set their own, far lower.
"""

from __future__ import annotations

from litestar import Router

from service.core.settings import Settings
from service.developers import deps
from service.developers.bulk.controller import DevelopersBulkController
from service.developers.controller import DevelopersController
from service.developers.events.controller import EventsController
from service.developers.events.tickets import FeedTicketsController
from service.developers.export.controller import DevelopersExportController
from service.developers.export.service import DeveloperExports


def router(settings: Settings, exports: DeveloperExports) -> Router:
    """`exports` is the process's one DeveloperExports, whose count of running exports is its limit."""
    return Router(
        "/",
        route_handlers=[
            DevelopersController,
            DevelopersBulkController,
            DevelopersExportController,
            EventsController,
            FeedTicketsController,
        ],
        dependencies=deps.DEPENDENCIES
        | {
            "developer_reads": deps.reads_dependency(settings),
            "developers_service": deps.service_dependency(settings),
            "developer_exports": deps.exports_dependency(exports),
            "feed_tickets": deps.tickets_dependency(settings),
        },
        request_max_body_size=settings.bulk_max_bytes,
    )
