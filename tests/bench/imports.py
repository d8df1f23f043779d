"""Background imports benchmark: a million rows through the job route against the synchronous bulk route, the
processes' peak memory, and the API's latency while a job imports, in one run.

    uv run python -m tests.bench.imports [--rows 1000000] [--repeat 3] [--poll 0.1] [--sample 0.05]
        [--idle-seconds 5] [--seed-rows 1000] [--skip-latency]

On a fresh database (TEST_DATABASE_URL's server, or an embedded PostgreSQL), the API runs as `devdir run` (one
granian worker, WORKER_IN_PROCESS=false) and the import worker as a separate `devdir workers run` process (one
job at a time), both with the default pool settings:

1. Throughput. --rows developers as one NDJSON body (built before anything is timed, sent in 5,000-row pieces):
   - job: POST /api/developers/imports (202), then GET /api/imports/{id} every --poll s until `succeeded`; timed
     from the first byte of the submit to the poll that sees `succeeded`. The job's time is split into submit
     (the upload stored and committed: the 202), queue wait (202 -> the job's `started_at`, set by the worker
     when it takes the job), import (`started_at` -> `finished_at`, set by the import transaction's last
     statement) and the rest (its COMMIT, and up to one --poll until a poll sees `succeeded`);
   - sync: POST /api/developers/bulk with the same body, timed from the first byte to the answer.
   Alternating (job sync, sync job, ...), best of --repeat; before each run the table is truncated and
   vacuumed and a CHECKPOINT taken, outside the timing. A small unmeasured job and bulk import warm both up.
2. Peak RSS (VmHWM) of the API's processes (granian's main process and its worker) and of the worker process,
   reset (/proc/<pid>/clear_refs) before each run, so each run's peak is its own: the highest over the job runs,
   and the API's over the sync runs for comparison.
3. Latency. With --seed-rows developers in the table, a separate process sends GET /api/developers/{id} and
   GET /api/developers?limit=10, each every --sample s, for --idle-seconds while nothing else runs, then through
   one more (untimed) job: its upload, its queue wait and its import. p50/p99/max per phase. The connections
   each process holds mid-import are read from pg_stat_activity (by application_name).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import msgspec
import uvloop

from service.accounts.auth import TokenIssuer, build_auth
from service.core.settings import Settings
from tests.bench.servers import BIN, descends, serving, worker_pid
from tests.database import connect, fetch, fetchval, fresh_database, run_sql, server_url
from tests.processes import free_port

API = 8841
SECRET = secrets.token_urlsafe(48)
AUTH = f"Bearer {TokenIssuer(build_auth(Settings(secret_key=SECRET))).issue(1, 'editor')}"
NDJSON = "application/x-ndjson"


def person(i: int) -> dict[str, str]:
    return {"name": f"Import Dev {i:07d}", "email": f"imp{i}@bench.example.com", "specialty": f"spec{i % 20:02d}"}


def ndjson(start: int, stop: int, per_chunk: int = 5000) -> list[bytes]:
    return [
        b"".join(msgspec.json.encode(person(i)) + b"\n" for i in range(first, min(first + per_chunk, stop)))
        for first in range(start, stop, per_chunk)
    ]


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)] if ordered else float("nan")


def _wall(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


# Processes


@contextlib.contextmanager
def worker_process(env: dict[str, str], health: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`devdir workers run`, until the block ends; ready once its queue connection is up (/ready)."""
    with log.open("wb") as out:
        process = subprocess.Popen([str(BIN / "devdir"), "workers", "run"], env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{health}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"devdir workers run did not become ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=60)


def family(pid: int) -> list[int]:
    """`pid` and its descendants."""
    found = [pid]
    for entry in Path("/proc").glob("[0-9]*"):
        child = int(entry.name)
        if child != pid and descends(child, pid):
            found.append(child)
    return found


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmHWM for {pid}")


def reset_peaks(pids: list[int]) -> bool:
    """Reset each process's VmHWM to its current RSS (clear_refs 5); whether the kernel allowed it."""
    try:
        for pid in pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# Runs


@dataclass
class JobRun:
    seconds: float  # submit start -> `succeeded` seen
    submit: float  # submit start -> 202 (the body stored, committed)
    queue: float  # 202 -> started_at
    imported: float  # started_at -> finished_at (the import transaction's last statement)
    seen: float  # finished_at -> `succeeded` seen: the COMMIT, and the poll's lag
    polls: int
    progress: list[int]  # rows_done seen while running
    wall: dict[str, float]  # wall-clock marks: submit, accepted, started, last_running, succeeded
    connections: list[tuple[str, str, int]]  # mid-import (application_name, state, count), if asked


def run_job(client: httpx.Client, body: list[bytes], rows: int, poll: float, url: str | None = None) -> JobRun:
    wall = {"submit": time.time()}
    started = time.perf_counter()
    response = client.post("/api/developers/imports", content=iter(body), headers={"content-type": NDJSON})
    accepted = time.perf_counter()
    wall["accepted"] = time.time()
    if response.status_code != 202:
        raise SystemExit(f"POST /api/developers/imports: {response.status_code} {response.text[:500]}")
    location = response.headers["location"]
    polls, progress, connections = 0, [], []
    while True:
        next_poll = time.perf_counter() + poll
        job = client.get(location).json()
        polls += 1
        if job["status"] == "succeeded":
            done = time.perf_counter()
            wall["succeeded"] = time.time()
            break
        if job["status"] not in ("queued", "running"):
            raise SystemExit(f"import job {job['id']} ended {job['status']}: {job['error']}")
        if job["status"] == "running":
            wall["last_running"] = time.time()
            progress.append(job["rows_done"])
            if url is not None and not connections and job["rows_done"] >= rows // 2:
                connections = asyncio.run(pool_use(url))
        time.sleep(max(next_poll - time.perf_counter(), 0))
    if job["created"] != rows:
        raise SystemExit(f"import job {job['id']}: {job}")
    wall["started"] = _wall(job["started_at"])
    wall["finished"] = _wall(job["finished_at"])
    queue = wall["started"] - wall["accepted"]
    imported = wall["finished"] - wall["started"]
    seen = done - accepted - queue - imported
    return JobRun(done - started, accepted - started, queue, imported, seen, polls, progress, wall, connections)


def run_sync(client: httpx.Client, body: list[bytes], rows: int) -> float:
    started = time.perf_counter()
    response = client.post("/api/developers/bulk", content=iter(body), headers={"content-type": NDJSON})
    elapsed = time.perf_counter() - started
    if response.status_code not in (200, 201) or response.json()["created"] != rows:
        raise SystemExit(f"POST /api/developers/bulk: {response.status_code} {response.text[:500]}")
    return elapsed


async def pool_use(url: str) -> list[tuple[str, str, int]]:
    rows = await fetch(
        url,
        """SELECT application_name, coalesce(state, ''), count(*)::int FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1, 2 ORDER BY 1, 2""",
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def empty(url: str) -> None:
    await run_sql(
        url, "TRUNCATE developers RESTART IDENTITY", "VACUUM ANALYZE developers, import_uploads", "CHECKPOINT"
    )


# Latency sampling, in a process of its own so the bench's own work never delays a sample


def sampler(pipe: Connection, base: str, auth: str, every: float, ids: int) -> None:
    uvloop.run(_sample(pipe, base, auth, every, ids))


async def _sample(pipe: Connection, base: str, auth: str, every: float, ids: int) -> None:
    samples: list[tuple[str, float, float, int]] = []  # (route, wall at send, ms, status)
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    async with httpx.AsyncClient(base_url=base, headers={"authorization": auth}, limits=limits) as client:

        async def route(name: str, path: Any) -> None:
            n, start = 0, time.perf_counter()
            while not stop.is_set():
                sent, at = time.perf_counter(), time.time()
                try:
                    status = (await client.get(path(n), timeout=30)).status_code
                except httpx.HTTPError:
                    status = 0
                samples.append((name, at, (time.perf_counter() - sent) * 1000, status))
                n += 1
                await asyncio.sleep(max(start + n * every - time.perf_counter(), 0))

        tasks = [
            asyncio.create_task(route("get", lambda n: f"/api/developers/{n * 7919 % ids + 1}")),
            asyncio.create_task(route("list", lambda _: "/api/developers?limit=10")),
        ]
        pipe.send("sampling")
        await asyncio.to_thread(pipe.recv)
        stop.set()
        await asyncio.gather(*tasks)
    pipe.send(samples)


@dataclass
class Latency:
    samples: list[tuple[str, float, float, int]]
    idle: tuple[float, float]
    job: JobRun


def latency_run(client: httpx.Client, url: str, body: list[bytes], args: argparse.Namespace) -> Latency:
    asyncio.run(empty(url))
    seed = [(f"Seed {i}", f"seed{i}@bench.example.com", f"spec{i % 20:02d}") for i in range(args.seed_rows)]

    async def load() -> None:
        conn = await connect(url)
        try:
            await conn.copy_records_to_table("developers", records=seed, columns=["name", "email", "specialty"])
            await conn.execute("ANALYZE developers")
        finally:
            await conn.close()

    asyncio.run(load())
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=sampler, args=(theirs, f"http://127.0.0.1:{API}", AUTH, args.sample, args.seed_rows), daemon=True
    )
    process.start()
    try:
        ours.recv()
        time.sleep(1)  # the sampler's connections opened, its first requests served
        idle = (time.time(), time.time() + args.idle_seconds)
        time.sleep(args.idle_seconds)
        job = run_job(client, body, args.rows, args.poll, url)
        ours.send("stop")
        samples = ours.recv()
    finally:
        process.join(30)
        if process.is_alive():
            process.terminate()
    return Latency(samples, idle, job)


# Report


def _line(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{len(ordered):>8}{percentile(ordered, 0.5):>8.1f}{percentile(ordered, 0.99):>8.1f}{ordered[-1]:>8.1f}"


def report_latency(lat: Latency, settings: Settings, sample: float) -> None:
    marks = lat.job.wall
    phases = {
        "idle, before the job": lat.idle,
        "upload (submit -> 202)": (marks["submit"], marks["accepted"]),
        "queue wait": (marks["accepted"], marks["started"]),
        "import (running)": (marks["started"], marks["finished"]),
    }
    print(
        f"\n3. API latency, ms: GET /api/developers/{{id}} and GET /api/developers?limit=10, each every "
        f"{sample * 1000:.0f} ms from a process of their own; an untimed job of the same body"
    )
    print(f"   {'phase':<26}{'route':<8}{'samples':>8}{'p50':>8}{'p99':>8}{'max':>8}  errors")
    for phase, (start, end) in phases.items():
        for route, label in (("get", "get"), ("list", "list")):
            chosen = [s for s in lat.samples if s[0] == route and start <= s[1] < end]
            if not chosen:
                print(f"   {phase:<26}{label:<8}{0:>8}")
                continue
            errors = sum(s[3] != 200 for s in chosen)
            print(f"   {phase:<26}{label:<8}{_line([s[2] for s in chosen])}  {errors}")
    print(
        f"   this job: submit {lat.job.submit:.2f} s, queue wait {lat.job.queue:.2f} s, import "
        f"{lat.job.imported:.2f} s, commit and poll {lat.job.seen:.2f} s"
    )
    print(
        f"   pools: the API's request pool DB_POOL_SIZE={settings.db_pool_size} (+{settings.db_max_overflow} "
        f"overflow) per granian worker; the worker's own pool WORKER_POOL_SIZE={settings.worker_pool_size} "
        f"(an import holds 2: its transaction, and autocommit status/progress), plus one queue connection; "
        f"WORKER_CONCURRENCY={settings.worker_concurrency}"
    )
    seen = ", ".join(f"{name or '-'} {state or '-'} {count}" for name, state, count in lat.job.connections)
    print(f"   connections mid-import (pg_stat_activity: application_name state count): {seen}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per import")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each route; the best is kept")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between a job's status polls")
    parser.add_argument("--sample", type=float, default=0.05, help="seconds between latency samples, per route")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="latency sampled idle for this long")
    parser.add_argument("--seed-rows", type=int, default=1000, help="developers the latency's GETs read")
    parser.add_argument("--skip-latency", action="store_true", help="leave out part 3")
    args = parser.parse_args()
    began, load_before = time.monotonic(), os.getloadavg()
    body = ndjson(0, args.rows)
    size = sum(map(len, body))
    settings = Settings()
    jobs: list[JobRun] = []
    syncs: list[float] = []
    peaks: dict[str, list[float]] = {"api worker job": [], "api main job": [], "worker job": [], "api worker sync": []}
    lat: Latency | None = None

    with server_url() as server, fresh_database(server) as url, tempfile.TemporaryDirectory() as tmp:
        version = asyncio.run(fetchval(url, "SHOW server_version"))
        health = free_port()
        env = os.environ | {
            "DATABASE_URL": url,
            "SECRET_KEY": SECRET,
            "WORKER_IN_PROCESS": "false",
            "WORKER_HEALTH_PORT": str(health),
        }
        api = [str(BIN / "devdir"), "run", "--port", str(API), "--workers", "1"]
        with (
            serving(api, env, API) as api_process,
            worker_process(env, health, Path(tmp) / "worker.log") as worker,
            httpx.Client(base_url=f"http://127.0.0.1:{API}", headers={"authorization": AUTH}, timeout=None) as client,
        ):
            api_main, api_worker = api_process.pid, worker_pid(api_process.pid)
            granian_main = [p for p in family(api_main) if p != api_worker]
            run_job(client, ndjson(0, 1000), 1000, args.poll)  # warm-up: imports, caches, pools
            asyncio.run(empty(url))
            run_sync(client, ndjson(0, 1000), 1000)
            resettable = True
            for repeat in range(args.repeat):  # job sync, sync job, ...: drift falls on both alike
                for route in ("job", "sync") if repeat % 2 == 0 else ("sync", "job"):
                    asyncio.run(empty(url))
                    resettable &= reset_peaks([*family(api_main), worker.pid])
                    if route == "job":
                        jobs.append(run_job(client, body, args.rows, args.poll))
                        peaks["worker job"].append(peak_mb(worker.pid))
                        peaks["api main job"].append(max(peak_mb(p) for p in granian_main))
                        print(f"  job   {args.rows / jobs[-1].seconds:>10,.0f} rows/s", flush=True)
                    else:
                        syncs.append(run_sync(client, body, args.rows))
                        print(f"  sync  {args.rows / syncs[-1]:>10,.0f} rows/s", flush=True)
                    peaks[f"api worker {route}"].append(peak_mb(api_worker))
            if not args.skip_latency:
                lat = latency_run(client, url, body, args)

    best_job = min(jobs, key=lambda r: r.seconds)
    best_sync = min(syncs)
    print(
        f"\nBackground imports: {args.rows:,} developers, one NDJSON body of {size / 1e6:.1f} MB; API `devdir run` "
        f"(one granian worker), worker `devdir workers run` (one job at a time); PostgreSQL {version}; "
        f"{os.cpu_count()} CPUs; load average {load_before[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the "
        f"end; {time.monotonic() - began:.0f} s"
    )
    print(f"\n1. End to end, alternating (job sync, sync job, ...), best of {args.repeat}, each on an emptied table")
    print(f"   {'route':<46}{'rows/s':>10}{'best s':>8}  each run, s")
    job_label = "job: POST /api/developers/imports -> succeeded"
    each = " ".join(f"{r.seconds:.2f}" for r in jobs)
    print(f"   {job_label:<46}{args.rows / best_job.seconds:>10,.0f}{best_job.seconds:>8.2f}  {each}")
    each = " ".join(f"{s:.2f}" for s in syncs)
    print(f"   {'sync: POST /api/developers/bulk':<46}{args.rows / best_sync:>10,.0f}{best_sync:>8.2f}  {each}")
    print(f"   job/sync {best_sync / best_job.seconds:.3f} (target >= 0.8)")
    print(f"   job's time, s{'':<10}{'total':>8}{'submit':>8}{'queue':>8}{'import':>8}{'commit+poll':>13}  polls")
    for n, r in enumerate(jobs, 1):
        mark = " (best)" if r is best_job else ""
        print(
            f"   run {n}{mark:<18}{r.seconds:>8.2f}{r.submit:>8.2f}{r.queue:>8.2f}{r.imported:>8.2f}{r.seen:>13.2f}"
            f"  {r.polls}"
        )
    print(
        "   submit = first byte -> 202 (the body stored in import_uploads, committed); queue = 202 -> the job's "
        "started_at (the worker took it); import = started_at -> finished_at (the import transaction's last "
        f"statement); commit+poll = the COMMIT and the status poll's lag (one poll every {args.poll * 1000:.0f} ms)"
    )
    seen = " ".join(f"{len(set(r.progress))}" for r in jobs)
    print(f"   distinct rows_done values the polls saw while each job ran: {seen}")
    print(
        "\n2. Peak RSS (VmHWM), MB, highest over the runs"
        + ("" if resettable else " (could not reset VmHWM: lifetime peaks)")
        + " (target < 250 MB)"
    )
    print(
        f"   API granian worker: job runs {max(peaks['api worker job']):.0f} (each "
        + " ".join(f"{p:.0f}" for p in peaks["api worker job"])
        + f"), sync runs {max(peaks['api worker sync']):.0f} (each "
        + " ".join(f"{p:.0f}" for p in peaks["api worker sync"])
        + ")"
    )
    print(f"   API granian main process: job runs {max(peaks['api main job']):.0f}")
    print(
        f"   worker process: job runs {max(peaks['worker job']):.0f} (each "
        + " ".join(f"{p:.0f}" for p in peaks["worker job"])
        + ")"
    )
    if lat is not None:
        report_latency(lat, settings, args.sample)


if __name__ == "__main__":
    main()
