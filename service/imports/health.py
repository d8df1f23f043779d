"""The worker process's probes, on WORKER_HEALTH_PORT: `GET /health` (200 while the process runs) and
`GET /ready` (200 while its queue connection is up, else 503). A minimal HTTP/1.1 server: one request per
connection, no framework."""

from __future__ import annotations

import asyncio
import contextlib

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
            if path == "/health":
                status, body = 200, "ok"
            elif path == "/ready":
                status, body = (200, "ready") if worker.ready else (503, worker.state)
            else:
                status, body = 404, "not found"
            payload = body.encode()
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: text/plain\r\n"
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
