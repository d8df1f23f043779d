"""Replica fault run: reads from a hot standby that is killed, restarted and made to cancel queries, end to end.

    uv run python -m tests.bench.replica_faults [--rows 300000] [--clients 8] [--seconds 10] [--exports 10]

A streaming pair of its own (tests/standby.py: an embedded PostgreSQL primary and a hot standby with
`max_standby_streaming_delay = 0` and no `hot_standby_feedback`, so that the standby cancels whatever stands in
the way of replay at once), --rows developers loaded on the primary in one INSERT ... SELECT and replayed, and the
service served by `devdir run` (one granian worker) with DATABASE_REPLICA_URLS naming the standby. Then, in turn:

  steady     --clients readers (a developer by id, or up to five pages of 100), no Consistency-Token, for --seconds
  kill       the same load; the standby killed (`pg_ctl stop -m immediate`) and left down for --seconds, started
             again, and the load kept on until the standby is measured usable and then for --seconds more
  conflicts  the same load and one exporter, while the primary updates 20,000 rows at a time and VACUUMs, and takes
             the table's ACCESS EXCLUSIVE lock every 20 ms (waiting 100 ms at most), for 2 x --seconds
  exports    --exports NDJSON exports of all rows, two at a time, while the primary updates and VACUUMs (no readers:
             the phase's reads counted are the exports')

It prints, per phase and in all: the answers by status code (and requests that got no whole answer), the
devdir_db_reads_total counted (by target and reason), the standby's pg_stat_database_conflicts and the statements
its log says it cancelled; and the exports' outcomes: exact count (a 200 with exactly --rows lines), clean failure
(an error status with a problem body, before any row), truncated (anything else).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx

from tests.bench.servers import BIN, serving
from tests.client import TEST_SECRET
from tests.db.replica_faults import (
    READER,
    ROWS,
    STANDBY_SETTINGS,
    Answers,
    Churn,
    Exports,
    cancelled_statements,
    churn,
    conflicts,
    export,
    exporting,
    load,
    locking,
    readers,
)
from tests.polling import until
from tests.processes import free_port
from tests.read_metrics import Reads, since
from tests.read_metrics import counted as reads_counted
from tests.standby import StreamingPair, streaming_pair

MAX_LAG_MS = 5000
STARTING = 300.0  # seconds the service may take to see a (re)started standby usable


class Run:
    def __init__(self, pair: StreamingPair, client: httpx.AsyncClient, ids: tuple[int, int], args: argparse.Namespace):
        self.pair, self.client, self.ids, self.args = pair, client, ids, args
        self.exports = Exports()
        self.rows: list[tuple[str, Answers, Counter[tuple[str, str]], dict[str, int], Counter[str], float]] = []

    async def counted(self) -> Reads:
        return await reads_counted(self.client, READER)

    async def standby_usable(self) -> bool:
        text = (await self.client.get("/metrics", headers=READER)).text
        up = any(line.startswith("devdir_db_replica_up{") and line.endswith(" 1.0") for line in text.splitlines())
        lags = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("devdir_db_replica_lag")]
        return up and bool(lags) and lags[0] <= MAX_LAG_MS / 1000

    async def phase(self, name: str, body: Callable[[Answers, asyncio.Event], Awaitable[None]], load: bool) -> None:
        """One phase: `body` runs while (with `load`) the readers do; what it cost, kept for the table."""
        answers, stop = Answers(), asyncio.Event()
        before, cancelled_before = await self.counted(), await conflicts(self.pair)
        log_at = len(self.pair.standby.log)
        started = time.monotonic()
        reading = asyncio.create_task(
            readers(self.client, answers, self.ids, stop, self.args.clients if load else 0, seed=len(self.rows))
        )
        try:
            await body(answers, stop)
        finally:
            stop.set()
            await reading
        seconds = time.monotonic() - started
        cancelled = await conflicts(self.pair)
        cancelled_delta = {key: cancelled[key] - cancelled_before[key] for key in cancelled}
        kinds = cancelled_statements(self.pair.standby.log[log_at:])
        self.rows.append((name, answers, since(before, await self.counted()), cancelled_delta, kinds, seconds))

    async def steady(self, _answers: Answers, _stop: asyncio.Event) -> None:
        await asyncio.sleep(self.args.seconds)

    async def kill(self, _answers: Answers, _stop: asyncio.Event) -> None:
        await asyncio.sleep(1)
        await asyncio.to_thread(self.pair.standby.pg_ctl, "-m", "immediate", "stop")
        await asyncio.sleep(self.args.seconds)
        await asyncio.to_thread(self.pair.start_standby)
        await until(self.standby_usable, "the standby measured usable again", STARTING, every=0.2)
        await asyncio.sleep(self.args.seconds)

    async def conflicted(self, _answers: Answers, stop: asyncio.Event) -> None:
        done = Churn()
        tasks = [
            asyncio.create_task(exporting(self.client, self.args.rows, self.exports, stop)),
            asyncio.create_task(churn(self.pair, self.ids, stop, done)),
            asyncio.create_task(locking(self.pair, stop, done, every=0.02)),
        ]
        try:
            await asyncio.sleep(2 * self.args.seconds)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        print(f"  conflicts: {done.updated:,} rows updated, {done.vacuums} VACUUMs, {done.locks} locks taken")

    async def export_all(self, _answers: Answers, stop: asyncio.Event) -> None:
        done = Churn()
        writer = asyncio.create_task(churn(self.pair, self.ids, stop, done))
        left = self.args.exports

        async def exporter() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await export(self.client, self.args.rows, self.exports)

        try:
            await asyncio.gather(exporter(), exporter())
        finally:
            stop.set()
            await writer
        print(f"  exports: {done.updated:,} rows updated, {done.vacuums} VACUUMs meanwhile")


async def run(pair: StreamingPair, args: argparse.Namespace) -> Run:
    ids = await load(pair, args.rows)
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": pair.primary_url,
        "DATABASE_REPLICA_URLS": pair.standby_url,
        "DB_REPLICA_MAX_LAG_MS": str(MAX_LAG_MS),
        "SECRET_KEY": TEST_SECRET,
    }
    service = [str(BIN / "devdir"), "run", "--port", str(port), "--workers", "1"]
    with serving(service, env, port):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            fault_run = Run(pair, client, ids, args)
            await until(fault_run.standby_usable, "the standby measured usable", STARTING, every=0.2)
            print(f"{args.rows:,} developers on the primary and the standby; the service sees the standby usable")
            await fault_run.phase("steady", fault_run.steady, load=True)
            await fault_run.phase("kill", fault_run.kill, load=True)
            await fault_run.phase("conflicts", fault_run.conflicted, load=True)
            await fault_run.phase("exports", fault_run.export_all, load=False)
            return fault_run


def report(fault_run: Run, standby_totals: dict[str, int]) -> None:
    rows = fault_run.rows
    print("\nAnswers by status code (and requests with no whole answer)")
    for name, answers, _, _, _, seconds in rows:
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(answers.statuses.items())) or "-"
        errors = ", ".join(f"{kind}: {n}" for kind, n in sorted(answers.errors.items())) or "none"
        print(f"  {name:<10} {seconds:5.1f} s   {statuses}   no answer: {errors}")
    total = sum((answers.statuses for _, answers, *_ in rows), Counter[int]())
    failed = sum(answers.failed for _, answers, *_ in rows)
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(total.items()))
    print(f"  {'all':<10}           {statuses}   >= 500 or no whole answer: {failed}")
    for name, answers, *_ in rows:
        for sample in answers.samples:
            print(f"    {name}: {sample}")

    print("\ndevdir_db_reads_total counted (target/reason)")
    keys = sorted({key for _, _, counted, *_ in rows for key in counted})
    print(f"  {'':<10}" + "".join(f"{'/'.join(key):>18}" for key in keys))
    for name, _, counted, *_ in rows:
        print(f"  {name:<10}" + "".join(f"{counted[key]:>18}" for key in keys))

    print("\nThe standby's pg_stat_database_conflicts (queries cancelled, by cause), and what its log says they were")
    for name, _, _, cancelled, kinds, _ in rows:
        causes = ", ".join(f"{key} {n}" for key, n in cancelled.items() if n) or "none"
        print(f"  {name:<10} {causes}")
        for kind, n in kinds.most_common():
            print(f"  {'':<12}{n:>4}  {kind}")
    print(f"  totals since the standby's restart: {standby_totals}")

    exports = fault_run.exports
    print(f"\nExports of {fault_run.args.rows:,} rows (NDJSON), {exports.outcomes.total()} in all")
    for outcome in ("exact count", "clean failure", "truncated"):
        print(f"  {outcome:<14} {exports.outcomes[outcome]}")
    print(f"  statuses: {dict(sorted(exports.statuses.items()))}")
    for problem in exports.problems:
        print(f"    {problem}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--exports", type=int, default=10)
    args = parser.parse_args()
    with streaming_pair(**STANDBY_SETTINGS) as pair:
        fault_run = asyncio.run(run(pair, args))
        report(fault_run, asyncio.run(conflicts(pair)))


if __name__ == "__main__":
    main()
