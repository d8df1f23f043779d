"""A request's transaction commits before its answer leaves: a 2xx always means committed.

advanced-alchemy's "autocommit" before-send handler commits while the answer's first message is on its way;
when COMMIT fails (a terminated connection, a server restart), it logs at DEBUG and the 2xx goes out anyway, for
a write that was never saved. It cannot do better from there: Litestar's before-send hooks cannot hold a message
back, and by the time they run the exception middleware has already marked the answer as started, so an error
raised there could not become an error answer either.

So this middleware settles the transaction while it holds the answer's first message: a 2xx commits, and only
then goes out; anything else rolls back first (a client that retries after an error never races a rollback still
holding its locks). A COMMIT that fails turns the answer into the problem that error maps to (503 with
Retry-After for a lost connection), and the rest of the original answer is dropped. The plugin keeps its default
before-send handler, which then closes the session.

A write declared replayed (service.db.isolation: the SERIALIZABLE account changes) has already committed its own
transaction inside its replay loop when the handler returns, since its COMMIT may fail with a serialization
failure that the loop must see; here it finds no transaction open and only lets the answer go.

With standbys serving reads (DATABASE_REPLICA_URLS), a write's 2xx carries a `Consistency-Token` naming its
transaction (service.db.consistency): asked for just before COMMIT, sent only once COMMIT has succeeded, and
remembered for the request's account.

The session is found where the plugin keeps it, with advanced-alchemy's private `get_aa_scope_state`: pyproject.toml
bounds advanced-alchemy's version, and tests/db/test_private_apis.py checks that shape.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Any

from advanced_alchemy.extensions.litestar._utils import get_aa_scope_state  # where the plugin keeps the session
from litestar import Request
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.consistency import HEADER_BYTES, XID_KEY, Consistency, capture, capturing

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CommitBeforeAnswer(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)
    # Reads write nothing: whatever session they used is closed (rolled back) by the plugin, and the hot reads
    # pay nothing for this layer.
    should_bypass_for_scope = staticmethod(lambda scope: scope["method"] in SAFE_METHODS)

    def __init__(
        self,
        session_scope_key: str,
        problem: Callable[[Exception], ProblemDetailsException],
        consistency: Consistency | None = None,
    ) -> None:
        self.session_scope_key = session_scope_key  # the plugin config's own (it is made unique per config)
        self.problem = problem
        self.consistency = consistency  # with standbys serving reads: each write's answer carries its token

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        refused = False  # COMMIT failed: the problem was sent instead, and the original answer is dropped
        consistency = self.consistency
        if consistency is not None:
            capturing()

        async def send_after_commit(message: Message) -> None:
            nonlocal refused
            if refused:
                return
            if message["type"] == "http.response.start":
                session: AsyncSession | None = get_aa_scope_state(scope, self.session_scope_key)
                ok = 200 <= message["status"] < 300
                if session is not None and (failed := await _settle(session, ok=ok)):
                    refused = True
                    await self._answer(self.problem(failed), scope, receive, send)
                    return
                if ok and consistency is not None and session is not None and (xid := session.info.pop(XID_KEY, None)):
                    user = scope.get("user")
                    token = consistency.written(xid, getattr(user, "id", None))
                    message["headers"] = [*message.get("headers", ()), (HEADER_BYTES, token)]
            await send(message)

        await next_app(scope, receive, send_after_commit)

    @staticmethod
    async def _answer(problem: ProblemDetailsException, scope: Scope, receive: Receive, send: Send) -> None:
        request: Request[Any, Any, Any] = Request(scope, receive)
        response = problem.to_response(request).to_asgi_response(app=None, request=request)
        await response(scope, receive, send)


async def _settle(session: AsyncSession, *, ok: bool) -> Exception | None:
    """Commit (ok) or roll back the session's transaction, before the answer goes; the error of a failed COMMIT.

    Nothing may be raised from here: the answer counts as started, so an exception could only end in a bare 500.
    A connection whose COMMIT or ROLLBACK failed is discarded, never returned to the pool.
    """
    if not session.in_transaction():
        return None
    try:
        if ok:
            await capture(session)  # the transaction's id, for its Consistency-Token (when standbys serve reads)
            await session.commit()
        else:
            await session.rollback()
    except Exception as exc:  # noqa: BLE001  (mapped to a problem, like any other error of the request)
        with suppress(Exception):
            await session.invalidate()
        return exc if ok else None
    return None
