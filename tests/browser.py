"""A real headless Chromium, driven by Playwright, for the tests of what a browser does with the service.

The browser is Debian's (`apt-get install chromium`, at /usr/bin/chromium, or wherever CHROMIUM names), never one
Playwright downloads. Where there is none the browser tests skip, saying so; under `.ci/run`, which installs it
and sets TEST_REQUIRE_PARTS=1, a missing browser fails them instead.

`Watched` records what a page did that a test forbids: a request to any origin but the service's own (each is
refused before it leaves, as an offline machine would), an uncaught error in the page, and an error logged to its
console (a Content-Security-Policy violation is one).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Error, Page, Route, async_playwright


def chromium_path() -> str | None:
    named = os.environ.get("CHROMIUM")
    return named if named else shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    """The browser's path; else the test skips (or fails, where every part is required)."""
    path = chromium_path()
    if path is None:
        reason = "no Chromium here (apt-get install chromium, or CHROMIUM=/path/to/chrome)"
        if os.environ.get("TEST_REQUIRE_PARTS") == "1":
            pytest.fail(f"TEST_REQUIRE_PARTS=1 and {reason}")
        pytest.skip(reason)
    return path


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    path = require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Watched:
    """What the pages of one browser context did that a test forbids (see the module's docstring)."""

    origin: str
    left_origin: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    @property
    def faults(self) -> list[str]:
        return (
            [f"request left the origin: {url}" for url in self.left_origin]
            + [f"page error: {text}" for text in self.page_errors]
            + [f"console error: {text}" for text in self.console_errors]
        )

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("console", self._console)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    async def route(self, route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" == self.origin:
            await route.continue_()
        else:
            self.left_origin.append(url)
            await route.abort("internetdisconnected")


@contextlib.asynccontextmanager
async def watched_context(browser: Browser, origin: str) -> AsyncIterator[tuple[BrowserContext, Watched]]:
    """A fresh browser context whose every page is watched, and whose requests to other origins never leave."""
    context = await browser.new_context(base_url=origin)
    watched = Watched(origin)
    await context.route("**/*", watched.route)
    context.on("page", watched.watch)
    try:
        yield context, watched
    finally:
        with contextlib.suppress(Error):  # the browser went first
            await context.close()


__all__ = ["Watched", "chromium", "chromium_path", "require_chromium", "watched_context"]
