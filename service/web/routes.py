"""Route decorators: Litestar's, minus a copy of the route handler on every guarded request.

Litestar runs each guard with `copy(route_handler)`, so that a guard cannot change the handler it guards; a route
handler has some sixty attributes, and the copy is a sizeable part of a hot read
(docs/decisions/0005-guards-without-handler-copy.md). The guards of this service (service.accounts.guards) never
look at the handler, so the handlers made here hand it over as it is; everything else is Litestar's
HTTPRouteHandler. Every route with a guard, and every route in the API document, is declared with these.

They also state in the API document what each route needs (`security`), from what it is declared with: nothing on
a route excluded from auth (an empty list, which Litestar would drop: an operation class keeps it); else the
requirement each of its guards states as its `security` (service.accounts.guards); else the document's default,
any token.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import OpenAPIHeader, OpenAPIResponse, OpenAPIType, Operation, Schema, SecurityRequirement

from service.db.consistency import HEADER

if TYPE_CHECKING:
    from litestar import Litestar


class RouteHandler(HTTPRouteHandler):
    __slots__ = ()

    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        for guard in self.resolve_guards():  # Litestar has made each one a coroutine function
            await guard(connection, self)  # type: ignore[misc]

    def on_registration(self, app: Litestar) -> None:
        super().on_registration(app)  # resolves the handler's opt and guards, its layers' included
        self.operation_class = _headers_in_order(self.operation_class)  # type: ignore[arg-type]
        if self.opt.get("exclude_from_auth"):
            self.security = []
            # A class is hashable; mypy reads Operation's __hash__ as its instances' (a dataclass's).
            self.operation_class = _public(self.operation_class)  # type: ignore[arg-type]
        elif self.security is None:
            default = app.openapi_config.security if app.openapi_config is not None else None
            required = _required(self.resolve_guards())
            self.security = [required] if required else list(default or [])


def get(path: str | Sequence[str] | None = None, **kwargs: Any) -> RouteHandler:
    return RouteHandler(path, http_method=HttpMethod.GET, **kwargs)


def post(path: str | Sequence[str] | None = None, **kwargs: Any) -> RouteHandler:
    return RouteHandler(path, http_method=HttpMethod.POST, **_writes(kwargs))


def patch(path: str | Sequence[str] | None = None, **kwargs: Any) -> RouteHandler:
    return RouteHandler(path, http_method=HttpMethod.PATCH, **_writes(kwargs))


def delete(path: str | Sequence[str] | None = None, **kwargs: Any) -> RouteHandler:
    return RouteHandler(path, http_method=HttpMethod.DELETE, **_writes(kwargs))


def _required(guards: Sequence[object]) -> SecurityRequirement:
    """What the guards require together: each scheme with the scopes of every guard that names it."""
    required: dict[str, list[str]] = {}
    for guard in guards:
        for scheme, scopes in getattr(guard, "security", {}).items():
            required.setdefault(scheme, []).extend(scopes)
    return required


@functools.cache
def _public(base: type[Operation]) -> type[Operation]:
    """`base`, saying that no credentials are needed (`security: []`), which Litestar leaves out when empty."""

    @dataclass
    class Public(base):  # type: ignore[valid-type,misc]
        def __post_init__(self) -> None:
            if (post_init := getattr(super(), "__post_init__", None)) is not None:
                post_init()
            self.security: list[SecurityRequirement] | None = []

    return Public


@functools.cache
def _headers_in_order(base: type[Operation]) -> type[Operation]:
    """`base`, its answers' headers in name order. Litestar collects a route's `response_headers` in a frozenset,
    whose order changes from one process to the next: the document would too."""

    @dataclass
    class HeadersInOrder(base):  # type: ignore[valid-type,misc]
        def __post_init__(self) -> None:
            if (post_init := getattr(super(), "__post_init__", None)) is not None:
                post_init()
            for response in (self.responses or {}).values():
                if isinstance(response, OpenAPIResponse) and response.headers:
                    response.headers = dict(sorted(response.headers.items()))

    return HeadersInOrder


def _writes(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A write's route: its 2xx answers document the Consistency-Token (unless `consistency=False`: a POST that
    writes nothing, such as signing in)."""
    if not kwargs.pop("consistency", True):
        return kwargs
    return {**kwargs, "operation_class": _answering_token(kwargs.get("operation_class", Operation))}


@functools.cache
def _answering_token(base: type[Operation]) -> type[Operation]:
    """`base`, with the Consistency-Token header on each 2xx answer. (An operation class, not `response_headers`:
    those miss an answer declared in `responses`, as the 202 of an import's submission is.)"""

    @dataclass
    class AnsweringToken(base):  # type: ignore[valid-type,misc]
        def __post_init__(self) -> None:
            if (post_init := getattr(super(), "__post_init__", None)) is not None:
                post_init()
            for status, response in (self.responses or {}).items():
                if status.startswith("2") and isinstance(response, OpenAPIResponse):
                    response.headers = (response.headers or {}) | {HEADER: _token_header()}

    return AnsweringToken


def _token_header() -> OpenAPIHeader:
    # Set by service.web.transaction on a write's 2xx (service.db.consistency).
    return OpenAPIHeader(
        schema=Schema(type=OpenAPIType.STRING),
        required=False,
        description=(
            "Present when the service reads from hot standbys and this request wrote: send it back as the "
            f"`{HEADER}` header of a later read, and that read shows this write (and every earlier one) whichever "
            "pod serves it. Opaque; a value the service did not issue is refused (400)."
        ),
    )
