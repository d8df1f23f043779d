"""Bulk write benchmark: the import route against the ORM unit of work and against raw COPY, in one run.

    uv run python -m tests.bench.bulk [--rows 100000] [--big-rows 1000000] [--update-rows 10000] [--repeat 3]

On a fresh database (TEST_DATABASE_URL's server, or an embedded PostgreSQL), with the service served by
`devdir run` (one granian worker) and the ORM reference (tests/bench/orm_app.py) by granian (one worker):

  (a) POST /api/developers/bulk, a JSON array of --rows developers
  (b) POST /api/developers/bulk, the same rows as an NDJSON stream (chunked request body)
  (c) the ORM path behind the same HTTP shape: add_all + flush of one model instance per row
  (d) asyncpg copy_records_to_table straight into the table: no HTTP, no staging, the physical limit

Each starts from an empty table and is timed from the first byte sent to the answer; the best of --repeat runs
is kept. Then: --big-rows developers as one NDJSON stream, and again as one JSON array sent in pieces, with the
server's peak RSS (VmHWM of its processes) before and after each; a batch PATCH of --update-rows rows (one
UPDATE statement); and, for scale, the same number of changes as single-row PATCH requests, 16 at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec

from service.accounts.auth import TokenIssuer, build_auth
from service.core.settings import Settings
from tests.bench.servers import BIN, descends, serving
from tests.database import connect, fresh_database, run_sql, server_url

SERVICE, ORM = 8821, 8822
SECRET = secrets.token_urlsafe(48)
AUTH = f"Bearer {TokenIssuer(build_auth(Settings(secret_key=SECRET))).issue(1, 'editor')}"


def person(i: int) -> dict[str, str]:
    return {"name": f"Developer {i:07d}", "email": f"dev{i}@bench.example.com", "specialty": f"spec{i % 20:02d}"}


def ndjson(start: int, stop: int, per_chunk: int = 5000) -> Iterator[bytes]:
    for first in range(start, stop, per_chunk):
        yield b"".join(msgspec.json.encode(person(i)) + b"\n" for i in range(first, min(first + per_chunk, stop)))


def json_array(start: int, stop: int, per_chunk: int = 5000) -> Iterator[bytes]:
    """A JSON array streamed in pieces, as a client writing a large array would send it."""
    for first in range(start, stop, per_chunk):
        items = b",".join(msgspec.json.encode(person(i)) for i in range(first, min(first + per_chunk, stop)))
        yield (b"[" if first == start else b",") + items
    yield b"]"


def post(port: int, path: str, content: bytes | Iterator[bytes], content_type: str) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    headers = {"content-type": content_type, "authorization": AUTH}
    response = httpx.post(f"http://127.0.0.1:{port}{path}", content=content, headers=headers, timeout=None)
    elapsed = time.perf_counter() - started
    if response.status_code not in (200, 201):
        raise SystemExit(f"{path}: {response.status_code} {response.text[:500]}")
    return elapsed, response.json()


async def copy_direct(url: str, rows: int) -> float:
    records = [(p["name"], p["email"], p["specialty"]) for p in map(person, range(rows))]
    conn = await connect(url)
    try:
        started = time.perf_counter()
        await conn.copy_records_to_table("developers", records=records, columns=["name", "email", "specialty"])
        return time.perf_counter() - started
    finally:
        await conn.close()


def peak_rss_mb(pid: int) -> dict[int, tuple[str, float]]:
    """VmHWM (peak resident set, MB) of `pid` and each of its descendants, with its command line: `devdir run`
    starts granian's main process, which starts the worker that runs the app."""
    peaks = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            command = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        child = int(fields["Pid"])
        if child == pid or descends(child, pid):
            peaks[child] = (command, int(fields.get("VmHWM", "0 kB").split()[0]) / 1024)
    return peaks


async def batch_update(port: int, rows: int, total: int) -> tuple[float, float]:
    step = max(total // rows, 1)
    ids = [1 + i * step for i in range(rows)]
    items = [{"id": i, "name": f"Renamed {i}", "specialty": "updated"} for i in ids]
    headers = {"authorization": AUTH}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=None) as client:
        started = time.perf_counter()
        response = await client.patch("/api/developers", json=items)
        batch = time.perf_counter() - started
        assert response.json() == {"updated": rows}, response.text
        queue = iter(ids)

        async def worker() -> None:
            for developer_id in queue:
                answer = await client.patch(f"/api/developers/{developer_id}", json={"name": f"Again {developer_id}"})
                assert answer.status_code == 200, answer.text

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(16)))
        single = time.perf_counter() - started
    return batch, single


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--big-rows", type=int, default=1_000_000)
    parser.add_argument("--update-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = args.rows
    json_body = msgspec.json.encode([person(i) for i in range(rows)])
    ndjson_body = list(ndjson(0, rows))

    with server_url() as server, fresh_database(server) as url:
        env = os.environ | {"DATABASE_URL": url, "SECRET_KEY": SECRET}
        service = [str(BIN / "devdir"), "run", "--port", str(SERVICE), "--workers", "1"]
        orm = [str(BIN / "granian"), "--interface", "asgi", "--port", str(ORM), "--workers", "1"]
        with serving(service, env, SERVICE) as server_process, serving([*orm, "tests.bench.orm_app:app"], env, ORM):
            scenarios = {
                "a": lambda: post(SERVICE, "/api/developers/bulk", json_body, "application/json")[0],
                "b": lambda: post(SERVICE, "/api/developers/bulk", iter(ndjson_body), "application/x-ndjson")[0],
                "c": lambda: post(ORM, "/orm/developers/bulk", json_body, "application/json")[0],
                "d": lambda: asyncio.run(copy_direct(url, rows)),
            }
            best: dict[str, float] = {}
            for _ in range(args.repeat):
                for name, run in scenarios.items():
                    asyncio.run(run_sql(url, "TRUNCATE developers RESTART IDENTITY", "VACUUM ANALYZE developers"))
                    best[name] = min(best.get(name, float("inf")), run())

            asyncio.run(run_sql(url, "TRUNCATE developers RESTART IDENTITY", "VACUUM ANALYZE developers"))
            rss_before = peak_rss_mb(server_process.pid)
            big_seconds, big_counts = post(
                SERVICE, "/api/developers/bulk", ndjson(0, args.big_rows), "application/x-ndjson"
            )
            rss_after = peak_rss_mb(server_process.pid)
            assert big_counts["created"] == args.big_rows, big_counts
            asyncio.run(run_sql(url, "TRUNCATE developers RESTART IDENTITY", "VACUUM ANALYZE developers"))
            json_seconds, json_counts = post(
                SERVICE, "/api/developers/bulk", json_array(0, args.big_rows), "application/json"
            )
            rss_after_json = peak_rss_mb(server_process.pid)
            assert json_counts["created"] == args.big_rows, json_counts
            asyncio.run(run_sql(url, "VACUUM ANALYZE developers"))
            batch, single = asyncio.run(batch_update(SERVICE, args.update_rows, args.big_rows))

    rate = {name: rows / seconds for name, seconds in best.items()}
    print(f"\nInsert {rows:,} developers into an empty table (best of {args.repeat}; rows/s)")
    labels = {
        "a": "(a) bulk route, JSON array",
        "b": "(b) bulk route, NDJSON stream",
        "c": "(c) ORM add_all + flush, same HTTP shape",
        "d": "(d) asyncpg copy_records_to_table, no HTTP",
    }
    for name, label in labels.items():
        print(f"  {label:<46}{rate[name]:>10,.0f}  ({best[name]:.2f} s)")
    print(f"  ratio (a)/(c) {rate['a'] / rate['c']:>6.1f}   (target >= 8)")
    print(f"  ratio (b)/(c) {rate['b'] / rate['c']:>6.1f}")
    print(f"  ratio (a)/(d) {rate['a'] / rate['d']:>6.2f}   (target >= 0.5)")
    big_rate = args.big_rows / big_seconds
    print(f"\n{args.big_rows:,} developers, one NDJSON request: {big_seconds:.1f} s, {big_rate:,.0f} rows/s")
    json_rate = args.big_rows / json_seconds
    print(f"{args.big_rows:,} developers, one JSON array request: {json_seconds:.1f} s, {json_rate:,.0f} rows/s")
    print(
        "  server peak RSS (VmHWM) per process: before -> after the NDJSON -> after the JSON array (target < 250 MB):"
    )
    for process, (command, after) in sorted(rss_after.items()):
        before = rss_before.get(process, (command, 0.0))[1]
        after_json = rss_after_json.get(process, (command, 0.0))[1]
        print(f"    {before:>5.0f} MB -> {after:>5.0f} MB -> {after_json:>5.0f} MB  pid {process}: {command[-60:]}")
    print(f"\nBatch update of {args.update_rows:,} rows (one UPDATE statement, table of {args.big_rows:,})")
    print(f"  PATCH /api/developers, one request      {args.update_rows / batch:>10,.0f} rows/s  ({batch:.2f} s)")
    print(f"  PATCH /api/developers/{{id}}, 16 at a time {args.update_rows / single:>10,.0f} rows/s  ({single:.2f} s)")


if __name__ == "__main__":
    main()
