"""The Python client generated from the API document (tools/clients.py, openapi-python-client) drives the real app
over a socket on the test database: sign-in, the developers' reads and writes with their validators, problems
parsed as the generated `Problem`, the bulk import in its three formats, the export, and a background import.

Where the generator is not installed the test skips, saying so; under `.ci/run` (TEST_REQUIRE_PARTS=1) it fails.
A document the generator warns about fails it everywhere.

Each import format has an operation of its own (one media type a body), so each has a generated method that works:
openapi-python-client 0.29 builds no request for a body of several media types.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest

from service.app import create_app
from service.core.settings import Settings
from tests.accounts.api import PASSWORD
from tests.client import token
from tests.database import empty
from tests.developers.api import encode
from tests.imports.api import FINISHED, WAIT, quick, reset
from tests.polling import until
from tests.server import served

TOOL = Path(__file__).resolve().parents[2] / "tools" / "clients.py"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("clients_tool", TOOL)
    assert spec is not None
    assert spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A function of the generated package's modules by name (`op("developers.get_developer")`, `op("models")`)."""
    tool = load_tool()
    out = tmp_path_factory.mktemp("clients")
    try:
        package = tool.python_client(tool.write_document(out), out / "python")
    except tool.Missing as missing:
        if os.environ.get("TEST_REQUIRE_PARTS") == "1":
            pytest.fail(f"TEST_REQUIRE_PARTS=1 and {missing}")
        pytest.skip(str(missing))
    sys.path.insert(0, str(package.parent))
    try:
        yield lambda name: importlib.import_module(f"{package.name}.{name}" if name else package.name)
    finally:
        sys.path.remove(str(package.parent))
        for name in [name for name in sys.modules if name.split(".")[0] == package.name]:
            del sys.modules[name]


@pytest.fixture
async def url(settings: Settings, database_url: str) -> Any:
    """The app, with an import worker in its process and If-Match required, served on emptied tables."""
    await reset(database_url)
    await empty(database_url, "users")
    app = create_app(quick(settings, require_if_match=True))
    try:
        async with served(app) as served_url:
            yield served_url
    finally:
        await app.state.feed.engine.dispose()
        await reset(database_url)


async def test_generated_client_drives_the_api(generated: Any, url: str, tmp_path: Path) -> None:
    models = generated("models")
    api = await signed_in(generated, url)
    ada = await crud(generated, api)
    await pages(generated, api)
    await problems(generated, api)
    await imports(generated, api, tmp_path)
    await background_import(generated, api)
    deleted = await generated("api.developers.delete_developer").asyncio_detailed(
        ada.id, client=api, if_match=await etag_of(generated, api, ada.id)
    )
    assert deleted.status_code == 204, deleted.content
    gone = await generated("api.developers.get_developer").asyncio_detailed(ada.id, client=api)
    assert isinstance(gone.parsed, models.Problem)
    assert gone.parsed.status == 404


async def signed_in(generated: Any, url: str) -> Any:
    """A client with the token of an account made and signed in to through the generated client."""
    models, package = generated("models"), generated("")
    admin = package.AuthenticatedClient(base_url=url, token=token("admin"))
    body = models.AccountCreate(email="client@example.com", password=PASSWORD, role=models.Role.ADMIN)
    created = await generated("api.users.create_account").asyncio_detailed(client=admin, body=body)
    assert created.status_code == 201, created.content
    form = models.SignIn(username="client@example.com", password=PASSWORD)
    anonymous = package.Client(base_url=url)
    answer = await generated("api.access.sign_in").asyncio(client=anonymous, body=form)
    assert isinstance(answer, models.AccessToken), answer
    assert answer.token_type == "bearer"
    return package.AuthenticatedClient(base_url=url, token=answer.access_token)


async def crud(generated: Any, api: Any) -> Any:
    """Create, read (then 304 with its ETag), and change a developer, If-Match and all; the changed developer."""
    models = generated("models")
    get = generated("api.developers.get_developer")
    body = models.DeveloperCreate(name="Ada Lovelace", email="ada@example.com", specialty="compilers")
    created = await generated("api.developers.create_developer").asyncio_detailed(client=api, body=body)
    assert created.status_code == 201, created.content
    ada = created.parsed
    assert isinstance(ada, models.Developer)
    assert (ada.name, ada.email, ada.specialty) == ("Ada Lovelace", "ada@example.com", "compilers")
    read = await get.asyncio_detailed(ada.id, client=api)
    assert read.parsed == ada
    assert read.headers["etag"] == created.headers["etag"]
    unchanged = await get.asyncio_detailed(ada.id, client=api, if_none_match=read.headers["etag"])
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    update = generated("api.developers.update_developer")
    change = models.DeveloperUpdate(specialty="mathematics")
    refused = await update.asyncio_detailed(ada.id, client=api, body=change)
    assert isinstance(refused.parsed, models.Problem)
    assert refused.parsed.status == 428
    changed = await update.asyncio_detailed(ada.id, client=api, body=change, if_match=read.headers["etag"])
    assert changed.status_code == 200, changed.content
    assert isinstance(changed.parsed, models.Developer)
    assert changed.parsed.specialty == "mathematics"
    assert changed.headers["etag"] != read.headers["etag"]
    return changed.parsed


async def pages(generated: Any, api: Any) -> None:
    """Three developers over two pages of two, by `next_cursor`; the first page again is a 304 by its ETag."""
    models, listing = generated("models"), generated("api.developers.list_developers")
    for name in ("Grace", "Edsger"):
        body = models.DeveloperCreate(name=name, email=f"{name.lower()}@example.com", specialty="compilers")
        assert (await generated("api.developers.create_developer").asyncio(client=api, body=body)).name == name
    first = await listing.asyncio_detailed(client=api, limit=2)
    assert isinstance(first.parsed, models.DeveloperPage)
    assert len(first.parsed.items) == 2
    assert isinstance(first.parsed.next_cursor, str)
    second = await listing.asyncio(client=api, limit=2, cursor=first.parsed.next_cursor)
    assert isinstance(second, models.DeveloperPage)
    assert len(second.items) == 1
    assert second.next_cursor is None
    names = {developer.name for developer in first.parsed.items + second.items}
    assert names == {"Ada Lovelace", "Grace", "Edsger"}
    again = await listing.asyncio_detailed(client=api, limit=2, if_none_match=first.headers["etag"])
    assert again.status_code == 304


async def problems(generated: Any, api: Any) -> None:
    """A taken email (409) and an unknown id (404), each parsed as the generated Problem."""
    models = generated("models")
    body = models.DeveloperCreate(name="Ada again", email="ada@example.com", specialty="compilers")
    taken = await generated("api.developers.create_developer").asyncio_detailed(client=api, body=body)
    assert taken.headers["content-type"].startswith("application/problem+json")
    assert isinstance(taken.parsed, models.Problem)
    assert (taken.parsed.status, taken.parsed.title) == (409, "Conflict")
    assert taken.parsed.detail
    unknown = await generated("api.developers.get_developer").asyncio(987654321, client=api)
    assert isinstance(unknown, models.Problem)
    assert (unknown.status, unknown.title) == (404, "Not Found")
    assert unknown.detail


async def imports(generated: Any, api: Any, tmp_path: Path) -> None:
    """The bulk import of a JSON array, NDJSON and CSV, each by its own generated method, then both exports.

    The NDJSON goes by the sync method in a thread, from a file on disk (httpx streams a file it is given); the CSV by
    the async method, from an async iterator of chunks (the async httpx client streams only those, or bytes).
    """
    models, types = generated("models"), generated("types")
    people = [models.DeveloperCreate(name="Bulk", email="json@example.com", specialty="bulk")]
    as_json = await generated("api.developers.import_developers").asyncio_detailed(client=api, body=people)
    rows_file = tmp_path / "rows.ndjson"
    rows_file.write_bytes(encode("ndjson", [row("ndjson")]))
    with rows_file.open("rb") as stream:
        body = types.File(payload=stream, file_name=rows_file.name)
        as_ndjson = await asyncio.to_thread(
            generated("api.developers.import_developers_ndjson").sync_detailed, client=api, body=body
        )
    as_csv = await generated("api.developers.import_developers_csv").asyncio_detailed(
        client=api, body=types.File(payload=chunks(encode("csv", [row("csv")])))
    )
    for sent in (as_json, as_ndjson, as_csv):
        assert isinstance(sent.parsed, models.BulkCreateResult), sent.content
        assert (sent.parsed.created, sent.parsed.updated, sent.parsed.skipped) == (1, 0, 0)
    again = await generated("api.developers.import_developers_csv").asyncio_detailed(
        client=api, body=types.File(payload=chunks(encode("csv", [row("csv")])))
    )
    assert isinstance(again.parsed, models.Problem)
    assert again.parsed.status == 409
    export = generated("api.developers.export_developers")
    exported = await export.asyncio_detailed(client=api, format_=models.ExportDevelopersFormat.CSV, specialty="bulk")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert sorted(exported.content.decode().splitlines()[1:]) == [
        "Bulk,csv@example.com,bulk",
        "Bulk,json@example.com,bulk",
        "Bulk,ndjson@example.com,bulk",
    ]
    exported = await export.asyncio_detailed(client=api, format_=models.ExportDevelopersFormat.NDJSON)
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    lines = [msgspec.json.decode(line) for line in exported.content.splitlines()]
    assert len(lines) == 6
    assert {line["email"] for line in lines} >= {"ada@example.com", "ndjson@example.com"}


async def background_import(generated: Any, api: Any) -> None:
    """submitImportCsv by its generated method, then getImport until the job ends."""
    models, types = generated("models"), generated("types")
    body = types.File(payload=chunks(encode("csv", [row("queued-1"), row("queued-2")])))
    submitted = await generated("api.imports.submit_import_csv").asyncio_detailed(client=api, body=body)
    job = submitted.parsed
    assert isinstance(job, models.ImportJob), submitted.content
    assert job.status == models.ImportStatus.QUEUED
    assert submitted.headers["location"] == f"/api/imports/{job.id}"
    get_import = generated("api.imports.get_import")
    last: list[Any] = [job]

    async def finished() -> bool:
        last[0] = await get_import.asyncio(job.id, client=api)
        return isinstance(last[0], models.ImportJob) and last[0].status in FINISHED

    await until(finished, lambda: f"import {job.id} to finish, last read as {last[0]}", within=WAIT)
    assert last[0].status == models.ImportStatus.SUCCEEDED, last[0]
    assert (last[0].rows_done, last[0].created, last[0].error) == (2, 2, None)


async def chunks(data: bytes, size: int = 16) -> AsyncIterator[bytes]:
    """`data` as an async byte stream, in pieces of `size`."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def row(tag: str) -> dict[str, str]:
    return {"name": "Bulk", "email": f"{tag}@example.com", "specialty": "bulk"}


async def etag_of(generated: Any, api: Any, developer_id: int) -> str:
    read = await generated("api.developers.get_developer").asyncio_detailed(developer_id, client=api)
    assert read.status_code == 200, read.content
    return str(read.headers["etag"])
