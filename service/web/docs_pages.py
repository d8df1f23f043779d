"""The API document's pages, served whole by the service: Swagger UI at /schema and /schema/swagger, Scalar at
/schema/scalar, each from a copy vendored into the package (service/web/docs_assets, with its licence, version and
checksums; docs/decisions/0007-vendored-api-document-pages.md says why and how to update it).

Litestar's render plugins are kept and told where the copies are: their pages load the UIs from the service's own
paths, start them from served scripts (no inline script, so the pages' Content-Security-Policy allows none, see
service.web.security_headers), and configure Scalar so that it fetches nothing from elsewhere: no default fonts (the
system's are used), no request proxy, no telemetry, no AI agent. Each vendored copy is served below
/schema/assets/<package>-<version>/ and, its path naming its version, may be cached for a year; the pages' own small
scripts and sheet, below /schema/assets/pages/, are revalidated.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

from service.web.controller import options_handler

if TYPE_CHECKING:
    from litestar import Request

ASSETS = Path(__file__).parent / "docs_assets"
SWAGGER_UI = "swagger-ui-dist-5.35.0"
SCALAR = "scalar-api-reference-1.76.4"
PAGES = "pages"
IMMUTABLE = CacheControlHeader(public=True, max_age=31_536_000, immutable=True)
REVALIDATED = CacheControlHeader(no_cache=True)

# Scalar's options that keep it at home (its defaults load fonts from fonts.scalar.com, send "Test request" through
# proxy.scalar.com, and offer an agent and a client hosted by scalar.com).
SCALAR_OPTIONS: dict[str, Any] = {
    "withDefaultFonts": False,
    "telemetry": False,
    "hideClientButton": True,
    "showDeveloperTools": "never",
    "agent": {"disabled": True},
    "mcp": {"disabled": True},
    "persistAuth": False,
}


def assets_router(directory: str, *, cache_control: CacheControlHeader = IMMUTABLE) -> Router:
    """The files of one directory of docs_assets, below /schema/assets/<directory>/, named `directory`."""
    return create_static_files_router(
        path=f"/assets/{directory}",
        directories=[ASSETS / directory],
        name=directory,
        cache_control=cache_control,
        router_class=_AssetsRouter,
    )


class _AssetsRouter(Router):
    """Litestar's static files router, whose path answers OPTIONS with all its methods, GET and HEAD, like every
    other (service.web.controller)."""

    def __init__(self, *, route_handlers: list[Any], **options: Any) -> None:
        super().__init__(route_handlers=[options_handler("/{file_path:path}"), *route_handlers], **options)


def _page(title: str, stylesheets: list[str], body: str, scripts: list[str]) -> bytes:
    links = "".join(f'<link rel="stylesheet" href="{href}">' for href in stylesheets)
    sources = "".join(f'<script src="{src}"></script>' for src in scripts)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{title}</title><link rel="icon" href="data:,">{links}</head><body>{body}{sources}</body></html>'
    ).encode()


def _asset(request: Request[Any, Any, Any], directory: str, name: str) -> str:
    return request.app.route_reverse(directory, file_path=name)


class SwaggerPages(SwaggerRenderPlugin):
    """Swagger UI from the vendored copy; its OAuth2 redirect page is the copy's own (served, with no inline
    script), not the plugin's."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        container = (
            f'<div id="swagger-ui" data-document-url="{self.get_openapi_json_route(request)}" '
            f'data-oauth2-redirect-url="{_asset(request, SWAGGER_UI, "oauth2-redirect.html")}"></div>'
        )
        return _page(
            openapi_schema["info"]["title"],
            [_asset(request, SWAGGER_UI, "swagger-ui.css"), _asset(request, PAGES, "pages.css")],
            container,
            [_asset(request, SWAGGER_UI, "swagger-ui-bundle.js"), _asset(request, PAGES, "swagger.js")],
        )

    def receive_router(self, router: Router) -> None:
        router.register(assets_router(SWAGGER_UI))


class ScalarPages(ScalarRenderPlugin):
    """Scalar from the vendored copy, configured to stay at home (SCALAR_OPTIONS)."""

    def __init__(self) -> None:
        super().__init__(options=SCALAR_OPTIONS)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        configuration = {**(self.options or {}), "url": self.get_openapi_json_route(request)}
        # A data block, never run: the page's policy does not need to allow it.
        data = msgspec.json.encode(configuration).decode().replace("</", "<\\/")
        body = f'<div id="scalar"></div><script id="scalar-configuration" type="application/json">{data}</script>'
        return _page(
            openapi_schema["info"]["title"],
            [_asset(request, PAGES, "pages.css")],
            body,
            [_asset(request, SCALAR, "standalone.js"), _asset(request, PAGES, "scalar.js")],
        )

    def receive_router(self, router: Router) -> None:
        router.register(assets_router(SCALAR))
