"""Stale-read benchmark: reads right after a client's own writes, on a hot standby that replays everything late.

    uv run python -m tests.bench.stale_reads [--loops 2000] [--delay-ms 500] [--offload 1000]

Starts a streaming pair (tests/standby.py) whose standby has `recovery_min_apply_delay` = --delay-ms, and serves
the app in process (tests.client.serve) with DATABASE_REPLICA_URLS = the standby and DB_REPLICA_MAX_LAG_MS = 4 x
the delay (at least 2,000), so the delayed standby stays fit for reads that need no recent write.

Then --loops write-then-read loops in each of four modes, as one editor (account 7):

  echoed     the write's `Consistency-Token` is sent back on the reads that follow it
  forgotten  no header at all: only the process's memory of the account's last write protects the reads
  echoed, guard only / forgotten, guard only
             the same, with the router's choice from memory switched off (every standby taken to have every write
             in its last sample): each read goes to the standby first, and only the check inside its own statement
             (service.db.consistency.guard) stands between the client and a stale answer

Each loop does the four kinds: create then GET by id (200 with the created body), PATCH then GET (the new value),
PATCH then the list filtered by the new value (exactly that developer, with it), DELETE then GET (404). A read that
shows less is stale; the count of stale reads per kind and mode is expected to be 0. Beside it, the change of
`devdir_db_reads_total` on /metrics during each mode: how many reads went to the primary (token_ahead: the standby
had not replayed the write yet) and how many ran on the standby.

Last the offload: once the standby has replayed everything, a viewer of another account (nothing remembered), with
no token, makes --offload GETs by id and --offload list pages; the share of each the standby served, by the metric
(target: at least 90 %).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import secrets
import time
from collections import Counter

import httpx

from service.app import create_app
from service.core.settings import Settings
from service.db.consistency import HEADER
from tests.client import TEST_SECRET, serve, token
from tests.polling import until
from tests.read_metrics import Reads, reads_counted, since
from tests.standby import StreamingPair, current_lsn, streaming_pair, wait_for_replay

KINDS = ("create→get", "patch→get", "patch→list", "delete→get")


def reads(metrics: str) -> Reads:
    """devdir_db_reads_total's samples, by (target, reason), and devdir_db_replica_retries_total's, summed over the
    standbys, by ("retried", reason)."""
    counted = reads_counted(metrics)
    for labels, value in re.findall(r"^devdir_db_replica_retries_total\{([^}]*)\} (\S+)$", metrics, re.M):
        named = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        counted["retried", named["reason"]] += int(float(value))
    return counted


async def counted(client: httpx.AsyncClient) -> Reads:
    return reads((await client.get("/metrics")).text)


def _new(specialty: str = "stale-bench") -> dict[str, str]:
    name = f"sr-{secrets.token_hex(6)}"
    return {"name": name, "email": f"{name}@example.com", "specialty": specialty}


def _ok(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response


async def loops(client: httpx.AsyncClient, count: int, *, echo: bool) -> Counter[str]:
    """`count` loops of the four kinds; the stale reads of each kind."""
    stale: Counter[str] = Counter({kind: 0 for kind in KINDS})

    def sent(write: httpx.Response) -> dict[str, str]:
        return {HEADER: write.headers[HEADER]} if echo else {}

    for _ in range(count):
        created = _ok(await client.post("/api/developers", json=_new()), 201)
        developer = created.json()
        path = f"/api/developers/{developer['id']}"
        got = await client.get(path, headers=sent(created))
        stale["create→get"] += got.status_code != 200 or got.json() != developer

        changed = _ok(await client.patch(path, json={"specialty": f"s-{secrets.token_hex(5)}"}), 200)
        new = changed.json()["specialty"]
        got = await client.get(path, headers=sent(changed))
        stale["patch→get"] += got.status_code != 200 or got.json()["specialty"] != new

        changed = _ok(await client.patch(path, json={"specialty": f"s-{secrets.token_hex(5)}"}), 200)
        new = changed.json()["specialty"]
        page = await client.get("/api/developers", params={"specialty": new}, headers=sent(changed))
        items = page.json()["items"] if page.status_code == 200 else []
        stale["patch→list"] += [(item["id"], item["specialty"]) for item in items] != [(developer["id"], new)]

        deleted = _ok(await client.delete(path), 204)
        gone = await client.get(path, headers=sent(deleted))
        stale["delete→get"] += gone.status_code != 404
    return stale


async def offload(client: httpx.AsyncClient, pair: StreamingPair, n: int) -> dict[str, tuple[Reads, float]]:
    """N GETs by id and N list pages by a viewer of account 8, no token, once the standby has replayed all: the
    metric's change for each, and the standby's share."""
    ids = [_ok(await client.post("/api/developers", json=_new("offload")), 201).json()["id"] for _ in range(50)]
    await wait_for_replay(pair.standby_url, await current_lsn(pair.primary_url))
    viewer = {"Authorization": f"Bearer {token('viewer', account_id=8)}"}
    results: dict[str, tuple[Reads, float]] = {}
    for kind in ("GET by id", "list page"):
        before = await counted(client)
        for i in range(n):
            if kind == "GET by id":
                _ok(await client.get(f"/api/developers/{ids[i % len(ids)]}", headers=viewer), 200)
            else:
                params = {"specialty": "offload", "limit": "20"} if i % 2 else {"limit": "20"}
                _ok(await client.get("/api/developers", params=params, headers=viewer), 200)
        change = since(before, await counted(client))
        results[kind] = (change, change.get(("replica", "fit"), 0.0) / n)
    return results


def _fmt(change: Reads) -> str:
    return ", ".join(f"{target}/{reason}={value:g}" for (target, reason), value in sorted(change.items())) or "-"


async def bench(pair: StreamingPair, args: argparse.Namespace, max_lag_ms: int) -> None:
    settings = Settings(
        database_url=pair.primary_url,
        database_replica_urls=pair.standby_url,
        secret_key=TEST_SECRET,
        db_replica_max_lag_ms=max_lag_ms,
        log_requests=False,
    )
    app = create_app(settings)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per request on stdout
    async with serve(app, bearer=None) as client:
        client.headers["Authorization"] = f"Bearer {token('editor', account_id=7)}"
        logging.getLogger("service").setLevel(logging.WARNING)  # as configured at startup, less its info lines
        standby = app.state.replicas.standbys[0]
        await until(lambda: standby.usable(max_lag_ms / 1000), f"the standby measured usable: {standby}")

        rows = []
        modes = [("echoed", True, False), ("forgotten", False, False)]
        modes += [("echoed, guard only", True, True), ("forgotten, guard only", False, True)]
        for mode, echo, guard_only in modes:
            before = await counted(client)
            started = time.monotonic()
            if guard_only:
                standby.has_seen = lambda _need: True  # this instance only
            try:
                stale = await loops(client, args.loops, echo=echo)
            finally:
                vars(standby).pop("has_seen", None)
            seconds = time.monotonic() - started
            change = since(before, await counted(client))
            rows.append((mode, stale, change, seconds))
            print(f"  {mode}: {args.loops} loops in {seconds:.1f} s ({args.loops / seconds:.1f} loops/s)", flush=True)

        results = await offload(client, pair, args.offload)
        raw = "\n".join(
            line
            for line in (await client.get("/metrics")).text.splitlines()
            if line.startswith(("devdir_db_reads_total", "devdir_db_replica"))
        )

    print()
    print(f"stale reads (expected 0), {args.loops} loops per mode, standby delay {args.delay_ms} ms:")
    print(f"  {'mode':<22}" + "".join(f"{kind:>12}" for kind in KINDS) + f"{'total':>8}")
    for mode, stale, _, _ in rows:
        print(f"  {mode:<22}" + "".join(f"{stale[kind]:>12}" for kind in KINDS) + f"{sum(stale.values()):>8}")
    print()
    print("devdir_db_reads_total change per mode (4 reads a loop), and retried/...: devdir_db_replica_retries_total's:")
    for mode, _, change, _ in rows:
        print(f"  {mode:<22} {_fmt(change)}")
    print()
    print(f"offload (viewer of another account, no token, standby caught up), {args.offload} each:")
    for kind, (change, share) in results.items():
        verdict = "ok" if share >= 0.9 else "BELOW TARGET"
        print(f"  {kind:<10} standby share {share:.1%} ({verdict}; target >= 90%)   {_fmt(change)}")
    print()
    print("/metrics at the end (devdir_db_reads_total, devdir_db_replica_*):")
    print(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loops", type=int, default=2000, help="write-then-read loops per mode")
    parser.add_argument("--delay-ms", type=int, default=500, help="the standby's recovery_min_apply_delay")
    parser.add_argument("--offload", type=int, default=1000, help="GETs by id, and list pages, in the offload")
    args = parser.parse_args()
    max_lag_ms = max(2000, 4 * args.delay_ms)
    started = time.monotonic()
    with streaming_pair(recovery_min_apply_delay=f"{args.delay_ms}ms") as pair:
        print(
            f"streaming pair up in {time.monotonic() - started:.1f} s; DB_REPLICA_MAX_LAG_MS={max_lag_ms}", flush=True
        )
        asyncio.run(bench(pair, args, max_lag_ms))
    print(f"\ntotal {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
