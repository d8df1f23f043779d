"""Feed tickets: short-lived credentials a browser page puts in the change feed's URL, where a token cannot go.

A page's `EventSource` sends no Authorization header, and cookies are never credentials here (a browser would send
them with any site's requests). So a page holding a bearer token trades it (`POST /api/developers/events/tickets`)
for a ticket, and opens `/api/developers/events?ticket=...` (or the WebSocket with it). A URL is seen by more
than a header (proxy logs, the browser's history), so a ticket is worth far less than the token:

- It lives EVENTS_TICKET_SECONDS (30 by default) and opens the feed only: the auth middleware reads one only on a
  route that declares `opt={TICKET_OPT: True}` (the SSE and WebSocket routes), and never as a bearer token.
- It is a JWT of its own kind: audience `devdir:feed`, signed with a key derived from SECRET_KEY for tickets
  alone, so a ticket's signature never verifies as a token's and a token's never as a ticket's, whichever
  reader gets it.
- It carries the caller's account id and scopes, so the stream it opens shows what the caller may see
  (`Principal.sees_owner`): a viewer's ticket never shows another's import jobs.
- It is stateless, like a token: any replica checks it with SECRET_KEY alone, and it is not single-use, because
  an EventSource that loses its connection reconnects by itself with the same URL (within the ticket's life; after
  it, the page gets a new ticket and resumes with `after=`). It is checked when a stream starts; a stream outlives
  it, as it outlives a token.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from litestar.exceptions import NotAuthorizedException
from litestar.security.jwt import Token

AUDIENCE = "devdir:feed"
TICKET_OPT = "feed_ticket"  # a route handler's opt key: this route takes `?ticket=` instead of a bearer token
QUERY = "ticket"
_ALGORITHM = "HS256"
_KEY_PURPOSE = b"devdir feed tickets v1"


def ticket_key(secret_key: str) -> str:
    """The tickets' signing key: HMAC-SHA256 of a fixed purpose under SECRET_KEY, so it is never the tokens' key."""
    return hmac.new(secret_key.encode(), _KEY_PURPOSE, hashlib.sha256).hexdigest()


class FeedTickets:
    """Issues tickets (the `feed_tickets` dependency) and checks them (the auth middleware)."""

    __slots__ = ("_key", "expires_in")

    def __init__(self, secret_key: str, seconds: int = 30) -> None:
        self._key = ticket_key(secret_key)
        self.expires_in = seconds

    def issue(self, account_id: int, scopes: frozenset[str]) -> str:
        now = datetime.now(UTC)
        claims = Token(
            sub=str(account_id),
            exp=now + timedelta(seconds=self.expires_in),
            iat=now,
            aud=AUDIENCE,
            extras={"scopes": sorted(scopes)},
        )
        return claims.encode(self._key, _ALGORITHM)

    def check(self, encoded: str) -> Token:
        """The ticket's claims; NotAuthorizedException (never naming the ticket) if it is malformed, forged, expired
        or not a ticket."""
        try:
            return Token.decode(encoded, self._key, _ALGORITHM, audience=AUDIENCE, strict_audience=True)
        except NotAuthorizedException:
            raise NotAuthorizedException("the ticket is invalid or expired; get a new one") from None
