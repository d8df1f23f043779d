"""The scale benchmark's watch on the database's connections, every 0.5 s over a connection of its own (opened
before anything else, so a full server cannot refuse it): pg_stat_activity's client backends by how they came
(TCP: the request pools, or PgBouncer's server connections; the Unix socket: the direct connections) and by
application_name, and PgBouncer's SHOW POOLS when there is one."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import asyncpg

from tests.bench.own_postgres import admin_console
from tests.database import connect

ACTIVITY = """SELECT client_addr IS NULL AS socket, coalesce(application_name, ''), count(*)::int
              FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
              GROUP BY 1, 2"""
SERVER_STATES = ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")


class Watch:
    def __init__(self, url: str, admin_url: str | None) -> None:
        self.url, self.admin_url = url, admin_url
        self.connection: asyncpg.Connection | None = None
        self.stopping = asyncio.Event()
        self.samples = 0
        self.max_tcp = self.max_socket = self.max_total = 0
        self.max_by_name: Counter[tuple[str, str]] = Counter()  # (tcp|socket, application_name) -> max
        self.max_servers = self.max_clients = self.max_waiting = 0  # PgBouncer: server connections, clients

    async def open(self) -> None:
        self.connection = await connect(self.url)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    async def sample(self) -> None:
        while not self.stopping.is_set():
            await asyncio.gather(self._activity(), self._pools())
            self.samples += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 0.5)

    async def _activity(self) -> None:
        assert self.connection is not None
        tcp = socket = 0
        for via_socket, name, count in await self.connection.fetch(ACTIVITY):
            key = ("socket" if via_socket else "tcp", name)
            self.max_by_name[key] = max(self.max_by_name[key], count)
            if via_socket:
                socket += count
            else:
                tcp += count
        self.max_tcp, self.max_socket = max(self.max_tcp, tcp), max(self.max_socket, socket)
        self.max_total = max(self.max_total, tcp + socket)

    async def _pools(self) -> None:
        if self.admin_url is None:
            return
        for row in await admin_console(self.admin_url, "SHOW POOLS"):
            if row.get("database") == "devdir":
                servers = sum(int(row.get(state, 0)) for state in SERVER_STATES)
                self.max_servers = max(self.max_servers, servers)
                self.max_clients = max(self.max_clients, int(row["cl_active"]) + int(row["cl_waiting"]))
                self.max_waiting = max(self.max_waiting, int(row["cl_waiting"]))
