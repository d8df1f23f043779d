"""Where the app's reads ran, as its /metrics counts them (`devdir_db_reads_total{target,reason}`): for the tests and
benchmarks of reads on hot standbys."""

from __future__ import annotations

import re
from collections import Counter

import httpx

Reads = Counter[tuple[str, str]]


def reads_counted(metrics: str) -> Reads:
    """devdir_db_reads_total's samples, by (target, reason)."""
    counted: Reads = Counter()
    for labels, value in re.findall(r"^devdir_db_reads_total\{([^}]*)\} (\S+)$", metrics, re.M):
        named = dict(re.findall(r'(\w+)="(\w*)"', labels))
        counted[named["target"], named["reason"]] = int(float(value))
    return counted


async def counted(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> Reads:
    """The app's reads counted so far (its /metrics, scraped with the client's own token or `headers`)."""
    answer = await client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    return reads_counted(answer.text)


def since(before: Reads, after: Reads) -> Reads:
    """What was counted between two scrapes (the counters only grow)."""
    return Counter({key: after[key] - before[key] for key in after if after[key] != before[key]})
