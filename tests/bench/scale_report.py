"""The scale benchmark's checks after the load (lost writes, feed gaps) and its table."""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import asyncpg

from tests.bench.scale_load import GONE, Load
from tests.bench.scale_watch import Watch

EVENTS = """SELECT xid::text || '-' || id FROM developer_events
            WHERE (xid, id) > ($1::text::xid8, $2) AND (xid, id) <= ($3::text::xid8, $4)"""


@dataclass
class Result:
    mode: str = ""
    processes: int = 0
    seconds: float = 0.0
    watch: Watch | None = None
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    jobs: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    checked: int = 0  # rows and emails whose final state the load knows
    uncertain: int = 0
    lost: list[str] = field(default_factory=list)
    events: int = 0  # committed during the run (the outbox)
    gaps: list[int] = field(default_factory=list)  # per subscriber: events it never received
    connects: list[int] = field(default_factory=list)
    feed_errors: Counter[str] = field(default_factory=Counter)
    service_too_many: int = 0
    pg_too_many: int = 0


async def verify(
    conn: asyncpg.Connection, work: Load, start: str, final: str, received: list[tuple[set[str], int, dict[str, int]]]
) -> Result:
    result = Result(statuses=work.tally.statuses, jobs=work.tally.jobs, errors=work.tally.errors)
    expected = work.expected
    rows = await conn.fetch("SELECT id, name FROM developers WHERE id = any($1::bigint[])", list(expected.names))
    emails = await conn.fetch(
        "SELECT lower(email) FROM developers WHERE lower(email) = any($1::text[])",
        [e.lower() for e in expected.emails],
    )
    bounds = [*start.split("-"), *final.split("-")]
    events = {r[0] for r in await conn.fetch(EVENTS, bounds[0], int(bounds[1]), bounds[2], int(bounds[3]))}
    found = {r[0]: r[1] for r in rows}
    for i, name in expected.names.items():
        if i in expected.uncertain:
            continue
        result.checked += 1
        if name is GONE and i in found:
            result.lost.append(f"developer {i}: deleted (2xx), still there")
        elif name is not GONE and found.get(i) != name:
            result.lost.append(f"developer {i}: {name!r} (2xx), found {found.get(i, 'nothing')!r}")
    present = {r[0] for r in emails}
    for email in expected.emails - expected.uncertain_emails:
        result.checked += 1
        if email.lower() not in present:
            result.lost.append(f"{email}: imported (2xx / succeeded), not there")
    result.uncertain = len(expected.uncertain) + len(expected.uncertain_emails)
    result.events = len(events)
    for ids, connects, errors in received:
        result.gaps.append(len(events - ids))
        result.connects.append(connects)
        result.feed_errors.update(errors)
    return result


def _by_class(statuses: Counter[tuple[str, int]]) -> dict[str, int]:
    classes = {"2xx": 0, "4xx": 0, "5xx": 0, "503": 0, "none": 0}
    for (_, status), count in statuses.items():
        if status == 0:
            classes["none"] += count
        else:
            classes[f"{status // 100}xx"] = classes.get(f"{status // 100}xx", 0) + count
        if status == 503:
            classes["503"] += count
    return classes


def report(
    results: list[Result],
    args: argparse.Namespace,
    users: dict[str, int],
    began: float,
    load: tuple[float, float, float],
) -> None:
    print(
        f"\nPast the wall: PostgreSQL max_connections 40; {args.processes} service processes (granian, one worker, "
        f"DB_POOL_SIZE 20, DB_MAX_OVERFLOW 0) and 2 import workers; {args.duration:.0f} s of load per mode; "
        f"{args.subscribers} SSE subscribers; users {users}; {os.cpu_count()} CPUs; load average {load[0]:.2f} at "
        f"the start, {os.getloadavg()[0]:.2f} at the end; {time.monotonic() - began:.0f} s"
    )
    print(
        f"{'mode':<8}{'procs':>6}{'client conns':>16}{'max server conns':>26}{'2xx':>8}{'4xx':>7}{'5xx':>7}{'503':>7}"
        f"{'no answer':>10}{'lost writes':>13}{'feed gaps':>17}"
    )
    for r in results:
        assert r.watch is not None
        w = r.watch
        clients = f"{r.processes * 20}+6" if r.mode == "pooled" else f"{r.processes * 20}+6 wanted"
        servers = f"{w.max_total} (tcp {w.max_tcp} / socket {w.max_socket})"
        c = _by_class(r.statuses)
        gaps = f"{sum(r.gaps)} ({sum(g > 0 for g in r.gaps)} subs)"
        print(
            f"{r.mode:<8}{r.processes:>6}{clients:>16}{servers:>26}{c['2xx']:>8}{c['4xx']:>7}{c['5xx']:>7}"
            f"{c['503']:>7}{c['none']:>10}{len(r.lost):>13}{gaps:>17}"
        )
    print("client conns: request-pool connections of the services (processes x 20) + the workers' import pools (2 x 3)")
    print(
        "max server conns: PostgreSQL client backends, most at once (tcp: request pools or PgBouncer's; socket: direct)"
    )
    for r in results:
        w = r.watch
        assert w is not None
        print(f"\n{r.mode}: {r.seconds:.0f} s, {w.samples} samples")
        if w.admin_url:
            print(
                f"  PgBouncer SHOW POOLS: server connections at most {w.max_servers} (default_pool_size 16), "
                f"clients at most {w.max_clients} (waiting {w.max_waiting})"
            )
        print(
            "  most connections at once by (how, application_name): "
            + ", ".join(f"{k[0]} {k[1] or '-'} {v}" for k, v in sorted(w.max_by_name.items()))
        )
        print(
            "  requests by operation and status: "
            + ", ".join(f"{op} {status or 'none'} {n}" for (op, status), n in sorted(r.statuses.items()))
        )
        print(f"  import jobs: {dict(r.jobs)}; client errors: {dict(r.errors) or 'none'}")
        print(
            f"  writes checked {r.checked}, uncertain (5xx or no answer) {r.uncertain}, lost {len(r.lost)}"
            + (f": {r.lost[:5]}" if r.lost else "")
        )
        print(
            f"  feed: {r.events} events committed in the run; missing per subscriber: max {max(r.gaps, default=0)}, "
            f"total {sum(r.gaps)}; connects per subscriber {min(r.connects, default=0)}..{max(r.connects, default=0)}; "
            f"stream errors {dict(r.feed_errors) or 'none'}"
        )
        print(f"  'too many clients': PostgreSQL log {r.pg_too_many}, service and worker logs {r.service_too_many}")
