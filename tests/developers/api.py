"""The developers API as tests drive it: create one developer, bulk-import people in each format, read the table."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import httpx
import msgspec

from tests.database import fetch

Person = dict[str, str]
FORMATS = ("json", "ndjson", "csv")
MEDIA = {"json": "application/json", "ndjson": "application/x-ndjson", "csv": "text/csv"}
# Each format's own import route (one media type each, as a generated client calls them); /bulk takes all three.
ROUTES = {"json": "/api/developers/bulk", "ndjson": "/api/developers/bulk.ndjson", "csv": "/api/developers/bulk.csv"}


async def create(client: httpx.AsyncClient, **fields: str) -> dict[str, Any]:
    response = await client.post("/api/developers", json=fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_as_event(client: httpx.AsyncClient, **fields: str) -> dict[str, Any]:
    """Create a developer; it as the change feed's event carries it: the answer's JSON and the answer's ETag."""
    response = await client.post("/api/developers", json=fields)
    assert response.status_code == 201, response.text
    return dict(response.json()) | {"etag": response.headers["etag"]}


def encode(fmt: str, people: Iterable[Person]) -> bytes:
    people = list(people)
    if fmt == "json":
        return msgspec.json.encode(people)
    if fmt == "ndjson":
        return b"".join(msgspec.json.encode(p) + b"\n" for p in people)
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=["name", "email", "specialty"])
    writer.writeheader()
    writer.writerows(people)
    return out.getvalue().encode()


def people(n: int, start: int = 0, specialty: str = "imported") -> list[Person]:
    return [
        {"name": f"Dev {i:06d}", "email": f"dev{i}@bulk.io", "specialty": specialty} for i in range(start, start + n)
    ]


async def bulk(
    client: httpx.AsyncClient,
    fmt: str,
    body: bytes | Iterable[Person],
    on_conflict: str | None = None,
    *,
    route: str = "/api/developers/bulk",
) -> httpx.Response:
    """POST the people as `fmt` to `route` (`/api/developers/bulk`, which takes all three; `ROUTES[fmt]`: its own)."""
    content = body if isinstance(body, bytes) else encode(fmt, body)
    params = {"on_conflict": on_conflict} if on_conflict else {}
    return await client.post(route, content=content, params=params, headers={"content-type": MEDIA[fmt]}, timeout=120)


async def table(database_url: str) -> list[tuple[Any, ...]]:
    rows = await fetch(database_url, "SELECT id, name, email, specialty, created_at, updated_at FROM developers")
    return sorted(tuple(row) for row in rows)
