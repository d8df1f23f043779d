"""The UIs vendored for the API document's pages are what their VENDORED.json says (a sha256 per file, so that no one
edits a vendored file by accident), each with its licence; and the service serves them publicly, under versioned
paths cached for a year, with their content types."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from litestar import Litestar

from service.web.docs_pages import ASSETS, PAGES, SCALAR, SWAGGER_UI
from tests.client import serve

VENDORED = sorted(ASSETS.glob("*/VENDORED.json"))


def test_the_pages_use_the_vendored_copies() -> None:
    assert sorted(path.parent.name for path in VENDORED) == sorted([SCALAR, SWAGGER_UI])


@pytest.mark.parametrize("record", VENDORED, ids=lambda path: path.parent.name)
def test_a_vendored_copy_is_what_its_record_says(record: Path) -> None:
    vendored = json.loads(record.read_text())
    directory = record.parent
    assert directory.name.endswith(f"-{vendored['version']}")
    assert vendored["integrity"].startswith("sha512-")
    assert "LICENSE" in vendored["sha256"]
    assert sorted(path.name for path in directory.iterdir()) == sorted([*vendored["sha256"], "VENDORED.json"])
    for name, sha256 in vendored["sha256"].items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == sha256, f"{directory.name}/{name}"
    assert not list(directory.glob("*.map"))


@pytest.mark.parametrize(
    ("directory", "name", "content_type"),
    [
        (SWAGGER_UI, "swagger-ui-bundle.js", "text/javascript"),
        (SWAGGER_UI, "swagger-ui.css", "text/css"),
        (SWAGGER_UI, "oauth2-redirect.html", "text/html"),
        (SCALAR, "standalone.js", "text/javascript"),
    ],
)
async def test_the_vendored_files_are_public_and_cached_for_a_year(
    app: Litestar, directory: str, name: str, content_type: str
) -> None:
    async with serve(app, bearer=None) as client:
        response = await client.get(f"/schema/assets/{directory}/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == content_type
    directives = {part.strip() for part in response.headers["cache-control"].split(",")}
    assert directives == {"public", "max-age=31536000", "immutable"}
    assert response.content == (ASSETS / directory / name).read_bytes()


async def test_the_pages_own_scripts_are_public_and_revalidated(app: Litestar) -> None:
    async with serve(app, bearer=None) as client:
        for name, content_type in (("swagger.js", "text/javascript"), ("pages.css", "text/css")):
            response = await client.get(f"/schema/assets/{PAGES}/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"].split(";")[0] == content_type
            assert response.headers["cache-control"] == "no-cache"
        missing = await client.get(f"/schema/assets/{SWAGGER_UI}/swagger-ui-bundle.js.map")
        assert missing.status_code == 404
