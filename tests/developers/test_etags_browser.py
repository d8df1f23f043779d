"""Validated reads in a real browser: a page fetches a developer, and a list page, twice; the browser keeps the
first answer (`Cache-Control: private, no-cache`), revalidates it with `If-None-Match` by itself, and the service
answers the second with a 304 and no body, while the page reads the same 200 both times."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar

from tests.browser import chromium
from tests.client import token
from tests.database import empty
from tests.server import served

pytestmark = pytest.mark.browser

# Twice the same fetch, with the bearer token a page would hold; what the page sees of each answer.
TWICE = """async ([token, path]) => {
  const read = async () => {
    const answer = await fetch(path, {headers: {Authorization: 'Bearer ' + token}});
    return {status: answer.status, etag: answer.headers.get('ETag'), body: await answer.text()};
  };
  return [await read(), await read()];
}"""


async def test_a_browser_revalidates_a_read_it_kept_and_is_answered_304(app: Litestar, database_url: str) -> None:
    await empty(database_url, "developers", "users")
    answered = app.state.metrics.requests.series  # (method, route template, status) -> [count, ...]
    async with served(app) as url, chromium() as browser:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token()}"}) as api:
            created = await api.post("/api/developers", json={"name": "Ada", "email": "ada@x.io", "specialty": "x"})
            assert created.status_code == 201, created.text
        # Not tests.browser's watched context: Playwright turns the browser's HTTP cache off in a context that routes
        # requests. The service's answers forbid scripts, so the page runs its fetches bypassing that policy.
        context = await browser.new_context(base_url=url, bypass_csp=True)
        try:
            page = await context.new_page()
            await page.goto("/health")
            reads = {
                "/api/developers/{developer_id}": f"/api/developers/{created.json()['id']}",
                "/api/developers": "/api/developers?limit=10",
            }
            for template, path in reads.items():
                first, second = await page.evaluate(TWICE, [token("viewer"), path])
                assert first["status"] == second["status"] == 200, (first, second)
                assert first["body"] == second["body"]
                assert "Ada" in first["body"]
                assert first["etag"] == second["etag"]
                assert first["etag"].startswith('"')
                # The service saw one full answer and one revalidation, which it answered with no body.
                assert answered[("GET", template, 200)][0] == 1, template
                assert answered[("GET", template, 304)][0] == 1, template
        finally:
            await context.close()
