"""The feed's tickets route: a bearer token traded for a ticket a browser page puts in the feed's URL, where an
`EventSource` can carry no header (service.accounts.tickets says what a ticket is and why)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import ResponseHeader

from service.accounts.auth import Principal
from service.accounts.guards import READ_DEVELOPERS
from service.developers.deps import FeedTicketsDep
from service.developers.events.schemas import FeedTicket
from service.web.controller import Controller
from service.web.problems import COMMON_RESPONSES
from service.web.routes import post

NO_STORE = [
    ResponseHeader(name="Cache-Control", value="no-store", description="A ticket is never cached."),
    ResponseHeader(name="Pragma", value="no-cache", description="The same, for HTTP/1.0 caches."),
]


class FeedTicketsController(Controller):
    path = "/api/developers/events/tickets"
    tags = ["developers"]

    @post(
        status_code=200,  # nothing is created that has a URL of its own: the ticket is the answer, as a token is
        consistency=False,  # writes nothing: a ticket is signed, not stored
        summary="A short-lived ticket to follow the change feed from a browser page",
        description=(
            "Opens `GET /api/developers/events?ticket=...` or the WebSocket `/api/developers/events/ws?ticket=...` "
            "for EVENTS_TICKET_SECONDS after it is issued, as the caller (its account and scopes), and nothing "
            "else: it is refused as a bearer token, and a ticket cannot get another ticket. A stream it opened "
            "outlives it; to reconnect after it expires, get a new one and resume with `after=` the last event's "
            "id."
        ),
        guards=[READ_DEVELOPERS],
        response_headers=NO_STORE,
        responses=COMMON_RESPONSES,
    )
    async def issue_event_ticket(
        self, request: Request[Principal, Any, Any], feed_tickets: FeedTicketsDep
    ) -> FeedTicket:
        caller = request.user
        return FeedTicket(feed_tickets.issue(caller.id, caller.scopes), feed_tickets.expires_in)
