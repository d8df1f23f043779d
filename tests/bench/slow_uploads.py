"""Slow-upload probe: what trickling bulk uploads hold, and what the other requests get meanwhile.

    uv run python -m tests.bench.slow_uploads [--uploads 20] [--rows 10001] [--interval 10] [--duration 100]
        [--set NAME=value ...]

On a fresh database (TEST_DATABASE_URL's server, or an embedded PostgreSQL), with the service served by
`devdir run` (one granian worker, the default settings unless --set), --uploads chunked NDJSON uploads to
POST /api/developers/bulk each send --rows rows at once, then one byte (a blank line) every --interval seconds
until answered. Meanwhile a listing and a create are sent every second. Every 5 seconds it prints the pool's
checked-out connections (from /metrics), the service's sessions in PostgreSQL (idle in a transaction / all), and
the other requests' statuses; then how each upload ended and the statuses over the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import secrets
import time

import httpx

from service.accounts.auth import TokenIssuer, build_auth
from service.core.settings import Settings
from tests.bench.servers import BIN, serving
from tests.database import fetchval, fresh_database, server_url
from tests.developers.api import encode, people
from tests.raw_http import SlowUpload
from tests.system.scrape import parse, value

PORT = 8832
SECRET = secrets.token_urlsafe(48)
ISSUER = TokenIssuer(build_auth(Settings(secret_key=SECRET)))
SESSIONS = (
    "SELECT count(*) FILTER (WHERE state = 'idle in transaction') || '/' || count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND application_name = 'devdir'"
)


async def others(api: httpx.AsyncClient, until: float, statuses: list[tuple[float, str]]) -> None:
    """A listing and a create every second, each on its own, until `until`; (when answered, "METHOD status")."""

    async def one(method: str, n: int) -> None:
        try:
            if method == "GET":
                status = (await api.get("/api/developers", params={"limit": 1})).status_code
            else:
                body = {"name": "Other", "email": f"other{n}@probe.io", "specialty": "other"}
                status = (await api.post("/api/developers", json=body)).status_code
            statuses.append((time.monotonic(), f"{method} {status}"))
        except httpx.HTTPError as exc:
            statuses.append((time.monotonic(), f"{method} {type(exc).__name__}"))

    sent: list[asyncio.Task[None]] = []
    n = 0
    while time.monotonic() < until:
        n += 1
        sent += [asyncio.create_task(one("GET", n)), asyncio.create_task(one("POST", n))]
        await asyncio.sleep(1)
    await asyncio.gather(*sent)


async def probe(url: str, args: argparse.Namespace) -> None:
    editor = {"Authorization": f"Bearer {ISSUER.issue(1, 'editor')}", "Content-Type": "application/x-ndjson"}
    bodies = [encode("ndjson", people(args.rows, start=i * args.rows)) for i in range(args.uploads)]
    uploads = [SlowUpload(PORT, "/api/developers/bulk", editor, body, args.interval) for body in bodies]
    admin = {"Authorization": f"Bearer {ISSUER.issue(1, 'admin')}"}
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORT}", headers=admin, timeout=60, limits=limits) as api:
        started = time.monotonic()
        until = started + args.duration
        statuses: list[tuple[float, str]] = []
        for upload in uploads:
            upload.begin()
        load = asyncio.create_task(others(api, until, statuses))
        print(f"{'s':>4} {'pool out':>9} {'sessions':>9}   other requests answered in the last 5 s")
        last = started
        while time.monotonic() < until:
            await asyncio.sleep(5)
            now = time.monotonic()
            checked_out = value(parse((await api.get("/metrics")).text), "devdir_db_pool_checked_out")
            sessions = await fetchval(url, SESSIONS)
            window = collections.Counter(status for at, status in statuses if last <= at < now)
            print(f"{now - started:4.0f} {checked_out:9.0f} {sessions:>9}   {dict(sorted(window.items()))}")
            last = now
        await load
        for upload in uploads:
            await upload.stop()
    ended = collections.Counter(
        f"{u.answer.status} after {u.seconds:.0f} s" if u.answer else "still uploading" for u in uploads
    )
    print("uploads:", dict(sorted(ended.items())))
    print("other requests:", dict(sorted(collections.Counter(status for _, status in statuses).items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--rows", type=int, default=10_001)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=100.0)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=value", help="a setting of the service")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)
    with server_url() as server, fresh_database(server) as url:
        env = os.environ | settings | {"DATABASE_URL": url, "SECRET_KEY": SECRET, "LOG_REQUESTS": "false"}
        service = [str(BIN / "devdir"), "run", "--port", str(PORT), "--workers", "1"]
        with serving(service, env, PORT):
            print(f"devdir run, {args.uploads} uploads of {args.rows} rows then a byte every {args.interval:g} s;")
            print(f"settings other than the defaults: {settings or 'none'}")
            asyncio.run(probe(url, args))


if __name__ == "__main__":
    main()
