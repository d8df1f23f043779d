"""The mixed load of the scale benchmark (tests/bench/pooler_scale.py), and what it expects to find afterwards.

Closed-loop virtual users, each bound to one service process: readers (GET by id, a list page and the next),
writers (POST, PATCH, sometimes DELETE, each on developers of their own), batch users (PATCH /api/developers and
POST /api/developers/bulk-delete on seeded ids of their own), one bulk importer, one user of background imports
(POST /api/developers/imports, polled until the job ends) and one exporter. Each row is written by one user only,
one request at a time, so the last 2xx write of a row says what the table must hold. A 5xx or a lost answer may
or may not have committed: its rows are left out of the check (`uncertain`); a 4xx wrote nothing.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import msgspec

GONE = None  # expected state of a deleted row
NDJSON = {"content-type": "application/x-ndjson"}


@dataclass
class Expected:
    names: dict[int, str | None] = field(default_factory=dict)  # developer id -> name, or GONE
    emails: set[str] = field(default_factory=set)  # imported by a 2xx bulk import or a succeeded job
    uncertain: set[int] = field(default_factory=set)  # ids whose last write had no clear answer
    uncertain_emails: set[str] = field(default_factory=set)


@dataclass
class Tally:
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (operation, status); 0 = no answer
    jobs: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class Load:
    def __init__(self, bases: list[str], token: str, rows: int, tag: str) -> None:
        self.bases, self.rows, self.tag = bases, rows, tag
        self.headers = {"authorization": f"Bearer {token}"}
        self.expected, self.tally = Expected(), Tally()
        self.stop = asyncio.Event()
        self.clients: list[httpx.AsyncClient] = []

    async def request(
        self, client: httpx.AsyncClient, op: str, method: str, url: str, **kw: object
    ) -> httpx.Response | None:
        try:
            response = await client.request(method, url, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            self.tally.statuses[op, 0] += 1
            self.tally.errors[f"{op}: {type(exc).__name__}"] += 1
            return None
        self.tally.statuses[op, response.status_code] += 1
        return response

    def settle(self, ids: list[int], response: httpx.Response | None, name: str | None) -> None:
        """What a write of `ids` leaves in the table: `name` (GONE for a delete) on 2xx, nothing on 4xx."""
        if response is not None and response.status_code < 300:
            for i in ids:
                self.expected.names[i] = name
                self.expected.uncertain.discard(i)
        elif response is None or response.status_code >= 500:
            self.expected.uncertain.update(ids)

    async def reader(self, client: httpx.AsyncClient, _: int) -> None:
        await self.request(client, "get", "GET", f"/api/developers/{random.randint(1, self.rows)}")
        page = await self.request(
            client, "list", "GET", f"/api/developers?specialty=spec{random.randrange(20):02d}&limit=20"
        )
        if page is not None and page.status_code == 200 and (cursor := page.json()["next_cursor"]):
            await self.request(client, "list", "GET", "/api/developers", params={"limit": 20, "cursor": cursor})

    async def writer(self, client: httpx.AsyncClient, vu: int) -> None:
        n = self.counter(vu)
        email = f"w{self.tag}-{vu}-{n}@scale.example"
        created = await self.request(
            client,
            "post",
            "POST",
            "/api/developers",
            json={"name": f"W {vu} {n}", "email": email, "specialty": "spec01"},
        )
        if created is None or created.status_code != 201:
            if created is None or created.status_code >= 500:
                self.expected.uncertain_emails.add(email)
            return
        i = created.json()["id"]
        self.settle([i], created, f"W {vu} {n}")
        patched = await self.request(client, "patch", "PATCH", f"/api/developers/{i}", json={"name": f"P {vu} {n}"})
        self.settle([i], patched, f"P {vu} {n}")
        if n % 3 == 0:
            self.settle([i], await self.request(client, "delete", "DELETE", f"/api/developers/{i}"), GONE)

    async def batcher(self, client: httpx.AsyncClient, vu: int) -> None:
        """Seeded ids of its own: the first ten thousandth-parts for batch PATCH, the next for bulk-delete."""
        n, share = self.counter(vu), self.rows // 40
        ids = random.sample(range(1 + vu * share, 1 + (vu + 1) * share), 20)
        name = f"B {vu} {n}"
        body = [{"id": i, "name": name} for i in ids]
        self.settle(ids, await self.request(client, "batch_patch", "PATCH", "/api/developers", json=body), name)
        start = 1 + (10 + vu) * share + (n * 10) % share
        doomed = list(range(start, min(start + 10, 1 + (11 + vu) * share)))
        if all(self.expected.names.get(i, "") is not GONE for i in doomed):
            response = await self.request(
                client, "bulk_delete", "POST", "/api/developers/bulk-delete", json={"ids": doomed}
            )
            self.settle(doomed, response, GONE)

    def people(self, kind: str, vu: int, n: int, count: int) -> tuple[list[str], bytes]:
        emails = [f"{kind}{self.tag}-{vu}-{n}-{k}@scale.example" for k in range(count)]
        rows = [
            {"name": f"{kind} {vu} {n} {k}", "email": e, "specialty": f"spec{k % 20:02d}"} for k, e in enumerate(emails)
        ]
        return emails, b"".join(msgspec.json.encode(r) + b"\n" for r in rows)

    async def bulk(self, client: httpx.AsyncClient, vu: int) -> None:
        emails, body = self.people("bulk", vu, self.counter(vu), 500)
        response = await self.request(
            client, "bulk_import", "POST", "/api/developers/bulk", content=body, headers=NDJSON
        )
        self.imported(emails, response is not None and response.status_code == 201, response)
        await asyncio.sleep(1)

    async def job(self, client: httpx.AsyncClient, vu: int) -> None:
        emails, body = self.people("job", vu, self.counter(vu), 500)
        response = await self.request(
            client, "import_job", "POST", "/api/developers/imports", content=body, headers=NDJSON
        )
        if response is None or response.status_code != 202:
            self.imported(emails, False, response)
            return
        location, deadline, status = response.headers["location"], time.monotonic() + 120, "lost"
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            polled = await self.request(client, "job_poll", "GET", location)
            if (
                polled is not None
                and polled.status_code == 200
                and polled.json()["status"] not in ("queued", "running")
            ):
                status = polled.json()["status"]
                break
        self.tally.jobs[status] += 1
        self.imported(emails, status == "succeeded", response if status in ("succeeded", "failed") else None)

    def imported(self, emails: list[str], done: bool, response: httpx.Response | None) -> None:
        if done:
            self.expected.emails.update(emails)
        elif response is None or response.status_code >= 500:
            self.expected.uncertain_emails.update(emails)

    async def exporter(self, client: httpx.AsyncClient, _: int) -> None:
        try:
            async with client.stream(
                "GET", f"/api/developers/export?format=ndjson&specialty=spec{random.randrange(20):02d}"
            ) as response:
                async for _chunk in response.aiter_bytes():
                    pass
                self.tally.statuses["export", response.status_code] += 1
        except httpx.HTTPError as exc:
            self.tally.statuses["export", 0] += 1
            self.tally.errors[f"export: {type(exc).__name__}"] += 1
        await asyncio.sleep(0.5)

    def counter(self, vu: int) -> int:
        self._counts[vu] = self._counts.get(vu, 0) + 1
        return self._counts[vu]

    _counts: dict[int, int]

    async def run(self, users: dict[str, int], seconds: float) -> float:
        """`users` virtual users of each kind, spread over the processes, for `seconds`; the seconds it took."""
        self._counts = {}
        self.clients = [
            httpx.AsyncClient(base_url=base, headers=self.headers, timeout=30, limits=httpx.Limits(max_connections=200))
            for base in self.bases
        ]
        tasks, vu = [], 0
        for kind, count in users.items():
            for k in range(count):
                tasks.append(
                    asyncio.create_task(self.user(getattr(self, kind), self.clients[vu % len(self.clients)], k))
                )
                vu += 1
        started = time.monotonic()
        await asyncio.sleep(seconds)
        self.stop.set()
        await asyncio.gather(*tasks)
        for client in self.clients:
            await client.aclose()
        return time.monotonic() - started

    async def user(self, action, client: httpx.AsyncClient, vu: int) -> None:  # type: ignore[no-untyped-def]
        while not self.stop.is_set():
            await action(client, vu)
