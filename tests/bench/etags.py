"""Conditional requests: what a lost update looks like without If-Match, what a matching If-None-Match saves, and
what the ETag work costs a read that sends no conditional header.

    uv run python -m tests.bench.etags [--rows 100000] [--rounds 15] [--duration 2] [--connections 32]

Loads N developers (20 specialties) into a fresh database (TEST_DATABASE_URL's server, or an embedded PostgreSQL)
and serves tests/bench/etag_switch_app.py with granian (one worker): the service, and in the same process the same
service whose two hot reads skip the ETag work (as before validators existed), switched between runs.

(a) 12 clients x 8 read-modify-write cycles on one developer (add one to the number in its name), without If-Match:
    how many of the 96 increments were lost; then the same with If-Match and a retry on 412 (none may be lost).
(b) and (c) Each round runs, for GET /api/developers/{id} and GET /api/developers?specialty=S (100 rows), in a
    random order: the service without conditional headers, the service with an If-None-Match that matches (304),
    and the service without its ETag work. Prints the medians of requests/s, the bytes received per request and
    the CPU time of the worker's event-loop thread per request, and the median over rounds of each round's ratio
    service / without ETag work, with its spread (min, max). The CPU time per request moves far less with the
    machine's load than requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import httpx

from service.accounts.auth import TokenIssuer, build_auth
from service.core.settings import Settings
from tests.bench.servers import BIN, serving, thread_cpu_seconds, worker_pid
from tests.database import connect, fresh_database, server_url

SPECIALTIES = [f"spec{i:02d}" for i in range(20)]
PORT = 8821
CLIENTS, CYCLES = 12, 8

LIST_LUA = """
local auth = os.getenv("AUTH")
local tags = {}
for tag in string.gmatch(os.getenv("TAGS") or "", "[^,]+") do table.insert(tags, tag) end
local conditional = os.getenv("CONDITIONAL") == "1"
local i = 0
request = function()
  i = (i + 1) % 20
  local headers = {Authorization = auth}  -- a table given to wrk.format replaces wrk.headers
  if conditional then headers["If-None-Match"] = tags[i + 1] end
  return wrk.format("GET", string.format("/api/developers?specialty=spec%02d", i), headers)
end
"""
GET_LUA = """
local auth = os.getenv("AUTH")
local n = tonumber(os.getenv("ROWS"))
local conditional = os.getenv("CONDITIONAL") == "1"
local i = 0
request = function()
  i = (i * 7919 + 1) % n
  local headers = {Authorization = auth}  -- a table given to wrk.format replaces wrk.headers
  if conditional then headers["If-None-Match"] = string.format('"%d.1"', i + 1) end
  return wrk.format("GET", "/api/developers/" .. tostring(i + 1), headers)
end
"""
_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


async def load(url: str, rows: int) -> None:
    conn = await connect(url)
    try:
        records = [(f"Dev {i:07d}", f"dev{i}@example.com", SPECIALTIES[i % 20]) for i in range(rows)]
        await conn.copy_records_to_table("developers", records=records, columns=["name", "email", "specialty"])
        await conn.execute("INSERT INTO developers (name, email, specialty) VALUES ('Counter 0', 'c@x.io', 'counter')")
        await conn.execute("ANALYZE developers")
    finally:
        await conn.close()


def wrk(script: Path, env: dict[str, str], duration: int, connections: int) -> tuple[float, float, int]:
    """requests/s, bytes received per request (headers and bodies), and the requests answered."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script)]
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{PORT}"], env=env, capture_output=True, text=True, check=True
    ).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"wrk saw errors:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    done = re.search(r"(\d+) requests in [\d.]+\w+, ([\d.]+)(\w+) read", output)
    assert rate, output
    assert done, output
    return float(rate[1]), float(done[2]) * _UNITS[done[3]] / int(done[1]), int(done[1])


def switch(on: bool) -> None:
    answer = httpx.get(f"http://127.0.0.1:{PORT}/etags?on={int(on)}", timeout=10).text
    assert answer == ("on" if on else "off"), answer


async def cycles(client: httpx.AsyncClient, developer_id: int, conditional: bool) -> int:
    """CYCLES increments of the number in the developer's name, each from the version read; the 412s met."""
    conflicts = 0
    for _ in range(CYCLES):
        while True:
            read = await client.get(f"/api/developers/{developer_id}")
            number = int(read.json()["name"].rsplit(" ", 1)[1])
            headers = {"If-Match": read.headers["etag"]} if conditional else {}
            written = await client.patch(
                f"/api/developers/{developer_id}", json={"name": f"Counter {number + 1}"}, headers=headers
            )
            if written.status_code == 200:
                break
            assert written.status_code == 412, written.text
            conflicts += 1
    return conflicts


async def lost_updates(editor: str, conditional: bool) -> tuple[int, int]:
    """The 12 x 8 scenario on the counter from 0: the increments lost, and the 412s retried."""
    headers = {"Authorization": f"Bearer {editor}"}
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORT}", headers=headers, limits=limits) as client:
        page = (await client.get("/api/developers?specialty=counter")).json()
        developer_id = page["items"][0]["id"]
        reset = await client.patch(f"/api/developers/{developer_id}", json={"name": "Counter 0"})
        assert reset.status_code == 200, reset.text
        conflicts = await asyncio.gather(*(cycles(client, developer_id, conditional) for _ in range(CLIENTS)))
        final = int((await client.get(f"/api/developers/{developer_id}")).json()["name"].rsplit(" ", 1)[1])
    return CLIENTS * CYCLES - final, sum(conflicts)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--duration", type=int, default=2, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    with server_url() as server, fresh_database(server) as url, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(load(url, args.rows))
        scripts = {"get": Path(tmp) / "get.lua", "list": Path(tmp) / "list.lua"}
        scripts["get"].write_text(GET_LUA)
        scripts["list"].write_text(LIST_LUA)
        secret = secrets.token_urlsafe(48)
        issuer = TokenIssuer(build_auth(Settings(secret_key=secret)))
        viewer, editor = issuer.issue(1, "viewer"), issuer.issue(2, "editor")
        env = os.environ | {
            "DATABASE_URL": url,
            "SECRET_KEY": secret,
            "DB_POOL_SIZE": "16",
            "ROWS": str(args.rows),
            "AUTH": f"Bearer {viewer}",
        }
        granian = [str(BIN / "granian"), "--interface", "asgi", "--workers", "1", "--port", str(PORT)]
        runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        ratios: dict[str, list[float]] = {"get": [], "list": []}
        cpu_ratios: dict[str, list[float]] = {"get": [], "list": []}
        with serving([*granian, "tests.bench.etag_switch_app:app"], env, PORT) as process:
            worker = worker_pid(process.pid)
            auth = {"Authorization": f"Bearer {viewer}"}
            tags = [
                httpx.get(f"http://127.0.0.1:{PORT}/api/developers?specialty={s}", headers=auth).headers["etag"]
                for s in SPECIALTIES
            ]
            env["TAGS"] = ",".join(tags)
            lost = asyncio.run(lost_updates(editor, conditional=False))
            kept = asyncio.run(lost_updates(editor, conditional=True))
            for on in (True, False):  # pools, statement caches
                switch(on)
                for route in scripts:
                    wrk(scripts[route], env | {"CONDITIONAL": "0"}, 2, args.connections)
            for _ in range(args.rounds):
                for route in random.sample(list(scripts), 2):
                    cells = {}
                    for cell in random.sample(["etags", "conditional", "without"], 3):
                        switch(cell != "without")
                        run_env = env | {"CONDITIONAL": "1" if cell == "conditional" else "0"}
                        before = thread_cpu_seconds(worker)
                        rate, size, count = wrk(scripts[route], run_env, args.duration, args.connections)
                        cells[cell] = (rate, size, (thread_cpu_seconds(worker) - before) / count * 1e6)
                        runs.setdefault((route, cell), []).append(cells[cell])
                    ratios[route].append(cells["etags"][0] / cells["without"][0])
                    cpu_ratios[route].append(cells["etags"][2] / cells["without"][2])

    print(f"\n(a) {CLIENTS} clients x {CYCLES} read-modify-write cycles on one developer, one granian worker")
    print(f"    without If-Match: {lost[0]} of {CLIENTS * CYCLES} increments lost")
    print(f"    with If-Match and a retry on 412: {kept[0]} lost, {kept[1]} retries after a 412")
    print(
        f"\n{args.rows} rows, wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds, each cell once "
        "a round in a random order, one process; medians"
    )
    print(f"{'route':<44}{'cell':<34}{'req/s':>8}{'bytes/answer':>14}{'loop CPU µs/request':>21}")
    labels = {"get": "GET /api/developers/{id}", "list": "GET /api/developers?specialty=S (100 rows)"}
    names = {
        "without": "no ETag work (before validators)",
        "etags": "ETag, no conditional header",
        "conditional": "If-None-Match matching: 304",
    }
    for route, label in labels.items():
        for cell, name in names.items():
            rate, size, cpu = (statistics.median(values) for values in zip(*runs[route, cell], strict=True))
            print(f"{label:<44}{name:<34}{rate:>8.0f}{size:>14.0f}{cpu:>21.0f}")
        print(f"{'':<8}req/s, ETag / no ETag work, per round: {spread(ratios[route])}  (target >= 0.97)")
        print(f"{'':<8}loop CPU per request, ETag / no ETag work, per round: {spread(cpu_ratios[route])}")


if __name__ == "__main__":
    main()
