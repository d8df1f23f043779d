"""Past the wall: more service processes than the database has connection slots, with a transaction-mode PgBouncer
and then without it, under the same mixed load.

    uv run python -m tests.bench.pooler_scale [--duration 120] [--processes 8] [--subscribers 50] [--rows 20000]
        [--modes pooled,direct]

For each mode, a PostgreSQL of its own (tests/bench/own_postgres.py) with max_connections = 40 and --rows seeded
developers; --processes service processes (granian, one worker each; DB_POOL_SIZE 20, DB_MAX_OVERFLOW 0: 160
request connections wanted with 8) and 2 import workers (`devdir workers run`), all with DATABASE_DIRECT_URL on
PostgreSQL's Unix socket (the change feed's LISTEN, the job queue):
- pooled: DATABASE_URL on a PgBouncer 1.18 (tests/pgbouncer.py, transaction mode, default_pool_size 16),
  DB_POOLER=transaction; the workers' import pools go through it too;
- direct: DATABASE_URL straight to PostgreSQL over TCP, DB_POOLER=none.
The load (tests/bench/scale_load.py) runs for --duration s, with --subscribers SSE subscribers
(tests/bench/scale_feed.py) spread over the processes, each following the feed from the run's start.
Every 0.5 s a connection opened before anything else samples pg_stat_activity (TCP connections: the request
pools, or PgBouncer's server connections; Unix-socket ones: the direct connections) and, pooled, PgBouncer's
SHOW POOLS. Afterwards: every 2xx write is looked for in the table (lost writes), each subscriber's events are
compared with the outbox after the start cursor (gaps), and "too many clients" is counted in PostgreSQL's log and
the services' logs (which log a kind of 503 once per 10 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from tempfile import TemporaryDirectory

from service.accounts.auth import TokenIssuer, build_auth
from service.core.settings import Settings
from tests.bench.__main__ import load
from tests.bench.imports import worker_process
from tests.bench.own_postgres import OwnPostgres, own_postgres
from tests.bench.scale_feed import Subscribers
from tests.bench.scale_load import Load
from tests.bench.scale_report import Result, report, verify
from tests.bench.scale_watch import Watch
from tests.bench.servers import BIN, serving
from tests.pgbouncer import PgBouncer, running
from tests.processes import free_port

SECRET = secrets.token_urlsafe(48)
ISSUER = TokenIssuer(build_auth(Settings(secret_key=SECRET)))
USERS = {"reader": 48, "writer": 24, "batcher": 4, "bulk": 1, "job": 1, "exporter": 1}
LATEST = "SELECT xid::text || '-' || id FROM developer_events ORDER BY xid DESC, id DESC LIMIT 1"


@contextlib.contextmanager
def pooler_for(mode: str, pg: OwnPostgres) -> Iterator[PgBouncer | None]:
    if mode == "direct":
        yield None
        return
    with running(pg.tcp_url, pool_size=16) as pooler:
        yield pooler


def environment(mode: str, pg: OwnPostgres, pooler: PgBouncer | None) -> dict[str, str]:
    env = os.environ | {
        "SECRET_KEY": SECRET,
        "DATABASE_DIRECT_URL": pg.socket_url,
        "DB_POOL_SIZE": "20",
        "DB_MAX_OVERFLOW": "0",
        "WORKER_IN_PROCESS": "false",
        "LOG_REQUESTS": "false",  # the 5xx are counted by the load; the logs keep the errors
    }
    if pooler is None:
        return env | {"DATABASE_URL": pg.tcp_url, "DB_POOLER": "none"}
    return env | {"DATABASE_URL": pooler.url(pg.tcp_url), "DB_POOLER": "transaction"}


def run_mode(mode: str, args: argparse.Namespace, logs: Path) -> Result:
    with own_postgres(max_connections=40) as pg, pooler_for(mode, pg) as pooler:
        result = asyncio.run(_mode(mode, args, pg, pooler, logs))
        result.service_too_many = sum(
            path.read_text(errors="replace").count("too many clients") for path in logs.glob(f"{mode}-*.log")
        )
        result.pg_too_many = pg.log.count("too many clients")
        return result


async def _mode(mode: str, args: argparse.Namespace, pg: OwnPostgres, pooler: PgBouncer | None, logs: Path) -> Result:
    """One event loop for the whole mode: the watch's connection is opened before the processes start and used
    until the end. (Nothing is served in this process: the processes' start-up waits run in threads.)"""
    await load(pg.tcp_url, args.rows)
    env = environment(mode, pg, pooler)
    watch = Watch(pg.tcp_url, pooler.admin_url if pooler else None)
    await watch.open()  # before anything else takes a slot; used for every query of the benchmark
    assert watch.connection is not None
    with contextlib.ExitStack() as stack:
        bases = []
        for n in range(args.processes):
            port = free_port()
            command = [str(BIN / "granian"), "--interface", "asgi", "--workers", "1", "--port", str(port)]
            command += ["--factory", "service.app:create_app"]
            log = logs / f"{mode}-service-{n}.log"
            await asyncio.to_thread(stack.enter_context, serving(command, env, port, log=log))
            bases.append(f"http://127.0.0.1:{port}")
        for n in range(2):
            health = free_port()
            worker_env = env | {"WORKER_HEALTH_PORT": str(health)}
            log = logs / f"{mode}-worker-{n}.log"
            await asyncio.to_thread(stack.enter_context, worker_process(worker_env, health, log))
        start = str(await watch.connection.fetchval(LATEST) or "0-0")
        feed = [bases[i % len(bases)] for i in range(args.subscribers)]
        subscribers = await asyncio.to_thread(Subscribers, feed, ISSUER.issue(1, "admin"), start)
        stack.callback(subscribers.stop)
        sampling = asyncio.create_task(watch.sample())
        work = Load(bases, ISSUER.issue(1, "editor"), args.rows, mode)
        seconds = await work.run(USERS, args.duration)
        await asyncio.sleep(2)  # the last transactions end; the feed serves below the oldest one still running
        final = str(await watch.connection.fetchval(LATEST) or "0-0")
        received = await subscribers.collect(final, 60)
        watch.stopping.set()
        await sampling
        result = await verify(watch.connection, work, start, final, received)
        await watch.close()
    result.mode, result.processes, result.seconds, result.watch = mode, len(bases), seconds, watch
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=120, help="seconds of load per mode")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--rows", type=int, default=20_000, help="developers seeded before the load")
    parser.add_argument("--modes", default="pooled,direct")
    parser.add_argument("--logs", type=Path, help="keep the services' and workers' logs here")
    args = parser.parse_args()
    began, load_before = time.monotonic(), os.getloadavg()
    results = []
    with TemporaryDirectory() as tmp:
        logs = args.logs or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        for mode in args.modes.split(","):
            print(f"{mode}: {args.duration:.0f} s of load ...", flush=True)
            results.append(run_mode(mode, args, logs))
    report(results, args, USERS, began, load_before)


if __name__ == "__main__":
    main()
