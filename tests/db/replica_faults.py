"""Faults of a hot standby under load, as tests/db/test_replica_faults.py and tests/bench/replica_faults.py drive
them: a table of many developers on a streaming pair whose standby cancels what stands in the way of replay at once
(`max_standby_streaming_delay = 0`, no `hot_standby_feedback`), readers that fetch developers and pages through the
app with no Consistency-Token (an account that writes nothing), exports whose bodies are checked line by line, a
writer on the primary that updates rows and vacuums them (and, if asked, takes the table's ACCESS EXCLUSIVE lock for
an instant), and the counts that say what happened: answers by status, devdir_db_reads_total, and the standby's
pg_stat_database_conflicts.

Everything goes over real sockets (tests.server.served): a truncated export is an incomplete chunked body, as a
client sees it.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import httpx

from service.core.settings import Settings
from tests import read_metrics
from tests.client import TEST_SECRET, token
from tests.database import connect, fetchval, run_sql
from tests.read_metrics import Reads
from tests.standby import StreamingPair, current_lsn, wait_for_replay

# The standby cancels a query as soon as it is in the way of replay, and tells the primary nothing of its queries,
# so that the primary's VACUUM removes rows a standby query still sees: recovery conflicts are real.
STANDBY_SETTINGS: dict[str, str | int] = {"max_standby_streaming_delay": "0", "hot_standby_feedback": "off"}
ROWS = 300_000
SPECIALTIES = 20
# The readers' account: it writes nothing, so no read of it must wait for a write (every read may go to the standby).
READER = {"Authorization": f"Bearer {token('viewer', account_id=8)}"}
CONFLICTS = (
    "SELECT confl_tablespace, confl_lock, confl_snapshot, confl_bufferpin, confl_deadlock "
    "FROM pg_stat_database_conflicts WHERE datname = current_database()"
)
# Outcomes of an export.
EXACT, CLEAN_FAILURE, TRUNCATED = "exact count", "clean failure", "truncated"


def settings(pair: StreamingPair, **overrides: object) -> Settings:
    """The app on the pair's own servers (never the run's pooler); the standby may lag a loaded machine's seconds."""
    return Settings(
        database_url=pair.primary_url,
        database_replica_urls=pair.standby_url,
        secret_key=TEST_SECRET,
        db_replica_max_lag_ms=5000,
        **overrides,  # type: ignore[arg-type]
    )


async def load(pair: StreamingPair, rows: int = ROWS) -> tuple[int, int]:
    """`rows` developers in one INSERT ... SELECT on the primary, replayed by the standby; their first and last id."""
    await run_sql(
        pair.primary_url,
        "INSERT INTO developers (name, email, specialty) "
        "SELECT 'fault ' || lpad(g::text, 7, '0'), 'fault' || g || '@example.com', "
        f"'spec' || lpad((g % {SPECIALTIES})::text, 2, '0') FROM generate_series(1, {rows}) AS g",
        "VACUUM ANALYZE developers",
    )
    await wait_for_replay(pair.standby_url, await current_lsn(pair.primary_url), within=120)
    first = int(await fetchval(pair.primary_url, "SELECT min(id) FROM developers"))
    last = int(await fetchval(pair.primary_url, "SELECT max(id) FROM developers"))
    return first, last


async def conflicts(pair: StreamingPair) -> dict[str, int]:
    """The standby's pg_stat_database_conflicts for the database: queries it cancelled, by cause."""
    conn = await connect(pair.standby_url)
    try:
        row = await conn.fetchrow(CONFLICTS)
    finally:
        await conn.close()
    assert row is not None
    return {key.removeprefix("confl_"): int(value) for key, value in row.items()}


async def counted(client: httpx.AsyncClient) -> Reads:
    return await read_metrics.counted(client, READER)


@dataclass
class Answers:
    """What the clients got: statuses, and errors of the connection (a cut answer, a refused one) by type."""

    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)  # a few bodies of answers >= 500, for the failure message

    def record(self, answer: httpx.Response) -> None:
        self.statuses[answer.status_code] += 1
        if answer.status_code >= 500 and len(self.samples) < 5:
            self.samples.append(f"{answer.request.url.path}: {answer.status_code} {answer.text[:500]}")

    @property
    def total(self) -> int:
        return self.statuses.total() + self.errors.total()

    @property
    def failed(self) -> int:
        """Answers >= 500, and requests that got no whole answer."""
        return sum(n for status, n in self.statuses.items() if status >= 500) + self.errors.total()


async def read(client: httpx.AsyncClient, answers: Answers, first: int, last: int, rng: random.Random) -> None:
    """One reader's request: a developer by id (mostly), or a run of up to five pages of 100, of one specialty or
    of all."""
    try:
        if rng.random() < 0.7:
            answers.record(await client.get(f"/api/developers/{rng.randint(first, last)}", headers=READER))
            return
        params: dict[str, str | int] = {"limit": 100}
        if rng.random() < 0.5:
            params["specialty"] = f"spec{rng.randrange(SPECIALTIES):02d}"
        for _ in range(rng.randint(1, 5)):
            answer = await client.get("/api/developers", params=params, headers=READER)
            answers.record(answer)
            if answer.status_code != 200 or not (cursor := answer.json()["next_cursor"]):
                return
            params["cursor"] = cursor
    except httpx.TransportError as error:
        answers.errors[type(error).__name__] += 1


async def readers(
    client: httpx.AsyncClient, answers: Answers, ids: tuple[int, int], stop: asyncio.Event, clients: int, seed: int = 0
) -> None:
    """`clients` readers, each sending its next request as its last one is answered, until `stop` is set."""

    async def reader(rng: random.Random) -> None:
        while not stop.is_set():
            await read(client, answers, *ids, rng)

    await asyncio.gather(*(reader(random.Random(seed * 1000 + n)) for n in range(clients)))


@dataclass
class Exports:
    """Outcomes of exports, with what was wrong with each that was not an exact count."""

    outcomes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


async def export(client: httpx.AsyncClient, rows: int, exports: Exports) -> None:
    """One NDJSON export of every developer, read to its end: an exact count is a 200 whose body holds exactly
    `rows` lines, each starting a JSON object and the last ending one; a clean failure an error status with a whole
    problem body (no row); anything else (a 200 cut short or with other lines) is truncated."""
    lines = objects = 0
    tail = b""
    status = 0
    try:
        async with client.stream(
            "GET", "/api/developers/export", params={"format": "ndjson"}, headers=READER, timeout=300
        ) as answer:
            status = answer.status_code
            exports.statuses[status] += 1
            if status != 200:
                body = await answer.aread()
                is_problem = answer.headers.get("content-type", "").startswith("application/problem+json")
                exports.outcomes[CLEAN_FAILURE if is_problem else TRUNCATED] += 1
                exports.problems.append(f"{status} {body[:300]!r}")
                return
            tail = b"\n"  # the first line starts an object too
            async for piece in answer.aiter_raw():
                lines += piece.count(b"\n")
                objects += (tail[-1:] + piece).count(b"\n{")
                tail = (tail + piece)[-200:]
    except httpx.TransportError as error:
        exports.outcomes[TRUNCATED] += 1
        exports.problems.append(f"{status} cut after {lines} lines: {type(error).__name__}: {error}")
        return
    if lines == rows and objects == rows and tail.endswith(b"}\n"):
        exports.outcomes[EXACT] += 1
    else:
        exports.outcomes[TRUNCATED] += 1
        exports.problems.append(f"200 with {lines} lines, {objects} objects (not {rows}), ending {tail[-60:]!r}")


async def exporting(client: httpx.AsyncClient, rows: int, exports: Exports, stop: asyncio.Event) -> None:
    """Exports one after the other until `stop` is set."""
    while not stop.is_set():
        await export(client, rows, exports)


@dataclass
class Churn:
    """What the primary's writer did: rounds of updates, VACUUMs, and instants it held the ACCESS EXCLUSIVE lock."""

    updated: int = 0
    vacuums: int = 0
    locks: int = 0


async def churn(
    pair: StreamingPair, ids: tuple[int, int], stop: asyncio.Event, done: Churn, chunk: int = 20_000
) -> None:
    """Until `stop`: update `chunk` rows (a new version of each, the old one dead at once: nothing on the primary
    holds a snapshot for long) and VACUUM the table, whose cleanup records conflict with every standby query whose
    snapshot still sees those versions (a long one: a list of many pages, an export)."""
    first, last = ids
    start = first
    conn = await connect(pair.primary_url)
    try:
        while not stop.is_set():
            end = min(start + chunk - 1, last)
            await conn.execute("UPDATE developers SET email = email WHERE id BETWEEN $1 AND $2", start, end)
            done.updated += end - start + 1
            start = first if end >= last else end + 1
            await conn.execute("VACUUM developers")
            done.vacuums += 1
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def locking(pair: StreamingPair, stop: asyncio.Event, done: Churn, every: float = 0.1) -> None:
    """Until `stop`: the table's ACCESS EXCLUSIVE lock on the primary for an instant, every `every` seconds. Its WAL
    record conflicts with every standby query that holds any lock on the table, however short (a developer by id).
    It waits 100 ms at most for the lock (an export streaming on the primary holds its own for long): the
    primary's readers queue behind it that long at most."""
    conn = await connect(pair.primary_url)
    try:
        while not stop.is_set():
            try:
                async with conn.transaction():
                    await conn.execute("SET LOCAL lock_timeout = '100ms'")
                    await conn.execute("LOCK TABLE developers IN ACCESS EXCLUSIVE MODE")
                done.locks += 1
            except asyncpg.LockNotAvailableError:
                pass
            await asyncio.sleep(every)
    finally:
        await conn.close()


CANCELLED = re.compile(
    r"(?:ERROR|FATAL):  (?:canceling statement|terminating connection) due to conflict with recovery\n"
    r"(?:.*DETAIL:  (?P<detail>.*)\n)?(?:.*STATEMENT:  (?P<statement>.*)\n)?"
)


def cancelled_statements(log: str) -> Counter[str]:
    """What the standby's log says it cancelled on a conflict with recovery: `<kind> (<why>)`, the kind `export`
    (its COPY), `page` (a list page), `one` (a developer by id), or the statement's first words; why, as the log's
    DETAIL says it."""
    kinds: Counter[str] = Counter()
    for match in CANCELLED.finditer(log):
        statement = match["statement"] or ""
        if statement.startswith("COPY"):
            kind = "export"
        elif "ORDER BY name, id LIMIT" in statement:
            kind = "page"
        elif statement.startswith("SELECT convert_to(") or "WHERE id = $1" in statement:
            kind = "one"
        else:
            kind = " ".join(statement.split()[:4]) or "(statement not in the log)"
        kinds[f"{kind} ({(match['detail'] or 'no detail').rstrip('.')})"] += 1
    return kinds
