"""Imports under database faults, as the memory test and benchmark drive them: clients that POST 5,000-row NDJSON
imports over and over while a Killer terminates the service's busy backends, so most imports end in a 503 with
their rows parsed and their COPY cut mid-way."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import Counter
from collections.abc import Callable

import httpx

from tests.client import token
from tests.developers.feed_faults_support import Killer

ROWS = 5_000  # rows per import: one chunk of 1,000, then one of 4,000 (service.developers.bulk.parsers)
CLIENTS = 8
KILL_EVERY = 0.05  # seconds between two rounds of terminations


def ndjson(number: int, tag: str, rows: int = ROWS) -> bytes:
    """The body of import `number`: `rows` developers, each with an email no other import uses."""
    lines = (
        f'{{"name":"Faulted {number}-{i}","email":"f{number}-{i}-{tag}@faults.io","specialty":"s"}}\n'
        for i in range(rows)
    )
    return "".join(lines).encode()


async def faulted_imports(
    base_url: str, database_url: str, *, until: Callable[[Counter[int]], bool], clients: int = CLIENTS
) -> Counter[int]:
    """Import from `clients` clients at once, while backends are terminated every KILL_EVERY s, until `until` is
    true of the statuses answered so far (0: no answer); those statuses."""
    statuses: Counter[int] = Counter()
    stop = asyncio.Event()
    numbers, tag = itertools.count(), secrets.token_hex(4)
    headers = {"Authorization": f"Bearer {token('editor')}", "content-type": "application/x-ndjson"}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http:
            while not stop.is_set():
                try:
                    response = await http.post("/api/developers/bulk", content=ndjson(next(numbers), tag))
                    statuses[response.status_code] += 1
                except httpx.TransportError:
                    statuses[0] += 1
                if until(statuses):
                    stop.set()

    killing = asyncio.create_task(Killer(database_url).run(stop, every=KILL_EVERY))
    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        stop.set()
        await killing
    return statuses
