"""`devdir workers run`: a worker process taking background imports from the queue on DATABASE_URL's database,
with its probes on WORKER_HEALTH_PORT; SIGTERM stops it (service.imports.worker says how)."""

from __future__ import annotations

import asyncio
import logging
import signal

import click

from service.core.settings import Settings
from service.imports import health
from service.imports.worker import Worker
from service.observability.log_writer import logging_config


@click.group(name="workers", help="Run the workers of background imports.")
def workers_group() -> None:
    pass


@workers_group.command(name="run", help="Run a worker until SIGTERM (or Ctrl-C).")
def run() -> None:
    settings = Settings.from_env()
    settings.check()
    # This process serves no HTTP: its log is the jobs it runs, one line each, in the API's format (LOG_FORMAT:
    # JSON objects, or human-readable lines), written by the same background writer.
    logging_config(settings.log_format).configure()
    logging.getLogger("service").setLevel(logging.INFO)
    asyncio.run(_run(settings))


async def _run(settings: Settings) -> None:
    worker = Worker(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    server = await health.serve(worker, settings.worker_health_port)
    click.echo(f"devdir: import worker {worker.name}, probes on port {settings.worker_health_port}", err=True)
    try:
        await worker.run()
    finally:
        server.close()
        await server.wait_closed()
