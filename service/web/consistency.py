"""What a request's reads must see (service.db.consistency): its `Consistency-Token` header and its account's last
write in this process, as dependencies any domain's read routes declare (`read_need`, `session_reads`), so the
header is stated once in the API document's terms."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import HeaderParameter

from service.db.consistency import HEADER, NOTHING, TOKEN_PATTERN, Consistency, Need
from service.db.routing import ReadRouter, SessionReads

ConsistencyToken = Annotated[
    str | None,
    HeaderParameter(
        name=HEADER,
        # Checked by service.db.consistency.Tokens, whose 400 names the header (Litestar's would name this
        # parameter) and says what a token is rather than quote the pattern.
        schema_extra={"pattern": TOKEN_PATTERN},
        description=(
            f"The `{HEADER}` of an earlier write's answer: the read then shows that write and every earlier one, "
            "whichever pod and database host serve it."
        ),
    ),
]


def need(request: Request[Any, Any, Any], state: State, token: str | None) -> Need:
    """What this request's reads must see: the write its Consistency-Token names, and its account's last write in
    this process; nothing when every read runs on the primary anyway (a token sent is still checked)."""
    router: ReadRouter = state["reads"]
    if not router.replicas and token is None:
        return NOTHING
    consistency: Consistency = state["consistency"]
    return consistency.need(token, getattr(request.scope.get("user"), "id", None))


def provide_read_need(
    request: Request[Any, Any, Any], state: State, consistency_token: ConsistencyToken = None
) -> Need:
    return need(request, state, consistency_token)


def provide_session_reads(
    request: Request[Any, Any, Any], state: State, consistency_token: ConsistencyToken = None
) -> SessionReads:
    return SessionReads(state["reads"], need(request, state, consistency_token))


DEPENDENCIES = {
    "read_need": Provide(provide_read_need, sync_to_thread=False),
    "session_reads": Provide(provide_session_reads, sync_to_thread=False),
}

ReadNeedDep = NamedDependency[Need]
SessionReadsDep = NamedDependency[SessionReads]
