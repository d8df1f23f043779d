"""The worker process's probes, on WORKER_HEALTH_PORT: `GET /health` (200 while the process runs) and
`GET /ready` (200 while its queue connection is up, else 503), and `GET /metrics`, the worker's metrics in
Prometheus text format (its jobs' durations by outcome, the rows it imported, its readiness), for a PodMonitor.
A minimal HTTP/1.1 server: one request per connection, no framework."""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from service.imports.worker import Worker

_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


async def serve(worker: Worker, port: int, host: str = "0.0.0.0") -> asyncio.Server:  # noqa: S104 (the pod's probes)
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request = await reader.readline()
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    del line  # headers: not needed
            parts = request.split()
            path = parts[1].decode(errors="replace") if len(parts) > 1 else ""
            content_type = "text/plain"
            if path == "/health":
                status, payload = 200, b"ok"
            elif path == "/ready":
                status, payload = (200, b"ready") if worker.ready else (503, worker.state.encode())
            elif path == "/metrics":
                status, payload, content_type = 200, generate_latest(worker.metrics.registry), CONTENT_TYPE_LATEST
            else:
                status, payload = 404, b"not found"
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(answer, host, port)
