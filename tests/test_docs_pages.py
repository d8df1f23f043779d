"""The API document's pages in a real browser: each renders the API's operations from the service alone (any request
to another origin is refused and fails the test, as does any page error or console error, a Content-Security-Policy
violation among them), and a reader signs in through the page and tries a route.

With DOCS_SCREENSHOTS=<directory> set, each page's screenshot is saved there (docs-swagger.png, docs-scalar.png).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from playwright.async_api import BrowserContext, Page, expect

from tests.accounts.api import PASSWORD, account
from tests.browser import Watched, chromium, watched_context
from tests.client import token
from tests.database import empty
from tests.server import served

pytestmark = pytest.mark.browser

EMAIL = "reader@x.io"
LIST_SUMMARY = "List developers, by name, one keyset page at a time"
# ms: generous, for pages of megabytes of script beside a CPU-bound process (for actions and expectations alike)
RENDERED = 60_000


@pytest.fixture
async def docs(app: Litestar, database_url: str) -> AsyncIterator[tuple[BrowserContext, Watched]]:
    """A watched browser context on the served app, which has one account (EMAIL, PASSWORD) and one developer."""
    await empty(database_url, "developers", "users")
    async with served(app) as url, chromium() as browser, watched_context(browser, url) as (context, watched):
        headers = {"Authorization": f"Bearer {token()}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            await account(client, EMAIL, "viewer")
            created = await client.post(
                "/api/developers", json={"name": "Ada", "email": "ada@x.io", "specialty": "compilers"}
            )
            assert created.status_code == 201, created.text
        context.set_default_timeout(RENDERED)
        yield context, watched


def screenshot(page: Page, name: str) -> Path | None:
    directory = os.environ.get("DOCS_SCREENSHOTS")
    return Path(directory) / name if directory else None


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
async def test_swagger_ui_signs_in_and_tries_a_route(docs: tuple[BrowserContext, Watched], path: str) -> None:
    context, watched = docs
    page = await context.new_page()
    await page.goto(path)
    operation = page.locator(".opblock-get", has_text=LIST_SUMMARY).first
    await expect(operation).to_be_visible(timeout=RENDERED)
    if (shot := screenshot(page, "docs-swagger.png")) and path == "/schema":
        await page.screenshot(path=shot)

    await page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".dialog-ux")
    await dialog.locator("#oauth_username").fill(EMAIL)
    await dialog.locator("#oauth_password").fill(PASSWORD)
    buttons = dialog.locator(".auth-btn-wrapper button")
    await buttons.filter(has_text="Authorize").click()
    await expect(buttons.filter(has_text="Logout")).to_be_visible(timeout=RENDERED)  # the token route said yes
    await buttons.filter(has_text="Close").click()

    await operation.locator(".opblock-summary").click()
    await operation.get_by_role("button", name="Try it out").click()
    await operation.get_by_role("button", name="Execute").click()
    answer = operation.locator(".live-responses-table .response")
    await expect(answer.locator(".response-col_status")).to_have_text("200", timeout=RENDERED)
    await expect(answer.locator(".response-col_description")).to_contain_text("ada@x.io", timeout=RENDERED)
    assert watched.faults == []


async def test_scalar_signs_in_and_tries_a_route(docs: tuple[BrowserContext, Watched]) -> None:
    context, watched = docs
    page = await context.new_page()
    await page.goto("/schema/scalar")
    await expect(page.get_by_role("heading", name=LIST_SUMMARY)).to_be_visible(timeout=RENDERED)
    if shot := screenshot(page, "docs-scalar.png"):
        await page.screenshot(path=shot)

    # Signed in in the API client that "Test Request" opens: a token got on the reference page itself is shown in
    # the client but not sent (Scalar 1.76.4).
    await page.get_by_role("button", name="Test Request (get /api/developers)").first.click()
    client = page.get_by_role("dialog", name="API Client")
    await client.get_by_role("combobox", name="Username").fill(EMAIL)
    await client.get_by_role("textbox", name="Password").fill(PASSWORD)
    await client.get_by_role("button", name="Authorize").click()
    await expect(client.get_by_role("button", name="Clear tokens")).to_be_visible(timeout=RENDERED)
    await client.get_by_role("button", name="Send get request").click()
    answer = client.get_by_role("region", name="Response")
    await expect(answer).to_contain_text("200 OK", timeout=RENDERED)
    await expect(answer).to_contain_text("ada@x.io", timeout=RENDERED)
    assert watched.faults == []
