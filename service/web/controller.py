"""The base of every controller: each of its paths answers OPTIONS itself, with all of the path's methods.

Litestar (2.x) adds an OPTIONS handler to a route when the route is first built, from the first handler
registered for the path, and that handler keeps answering with the methods the route had then: a path whose
handlers are GET, POST and PATCH answered `Allow: OPTIONS, POST`. The added handler also belongs to the
controller that registered it, so a guard on the controller ran on OPTIONS, where the auth middleware never
puts a user in scope (a 500). The handler declared here carries no guard and reads the methods from the app's
finished route when it answers, so `Allow` lists every handler of the path, whichever controller declared it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import litestar
from litestar import Request, Response
from litestar.enums import HttpMethod
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.status_codes import HTTP_204_NO_CONTENT

from service.web import path_ids


class Controller(litestar.Controller):
    """A Litestar controller whose paths answer OPTIONS with a complete `Allow` header and without a token, and
    whose routes read ids in paths strictly (service.web.path_ids).

    Guards belong on the route handlers, not on the controller: a controller's guards bind to OPTIONS too.
    Controllers that share a path go in one Router, their domain's (router.py): registered on the app itself, two
    of them would each bring an OPTIONS handler for the path, and Litestar refuses to start.
    """

    type_decoders = path_ids.TYPE_DECODERS

    def get_route_handlers(self) -> list[BaseRouteHandler]:
        handlers = super().get_route_handlers()
        methods: defaultdict[str, set[str]] = defaultdict(set)
        for handler in handlers:
            if isinstance(handler, HTTPRouteHandler):
                for path in handler.paths:
                    methods[path] |= handler.http_methods
        answers = [options_handler(path) for path, allowed in methods.items() if "OPTIONS" not in allowed]
        for options in answers:
            options.owner = self
        # Registered ahead of the others: Litestar adds its own OPTIONS handler to a route that has none yet.
        return [*answers, *handlers]


def options_handler(path: str) -> HTTPRouteHandler:
    """An OPTIONS handler for `path` that answers with every method of the path's finished route; register it
    before the path's other handlers."""

    async def options(request: Request[Any, Any, Any]) -> Response[None]:
        template = request.scope["path_template"]
        route = next(r for r in request.app.routes if isinstance(r, HTTPRoute) and r.path_format == template)
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": ", ".join(sorted(route.methods))})

    return HTTPRouteHandler(path=path, http_method=HttpMethod.OPTIONS, include_in_schema=False)(options)
