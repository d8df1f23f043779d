"""The change feed's subscribers of the scale benchmark (tests/bench/pooler_scale.py), in a process of their own:
SSE streams spread over the service processes, each from the run's start cursor, so that each must receive every
event committed during the run, whenever it connected.

A stream that ends (a `resync`, an error answer, a lost connection) is opened again after the last event it
received, as an EventSource does with `Last-Event-ID`: what counts is what each subscriber has received by the
end, and how often it had to reconnect.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import httpx
import msgspec
import uvloop

from service.developers.events.cursor import parse


class _Event(msgspec.Struct):
    id: str
    op: str


_EVENT = msgspec.json.Decoder(_Event)


@dataclass
class Follower:
    base: str
    after: str
    received: set[str] = field(default_factory=set)
    last: tuple[int, int] = (0, 0)
    connects: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    async def follow(self, token: str) -> None:
        headers = {"authorization": f"Bearer {token}"}
        timeout = httpx.Timeout(30, read=None)
        async with httpx.AsyncClient(base_url=self.base, headers=headers, timeout=timeout) as client:
            while True:
                try:
                    await self._stream(client)
                except httpx.HTTPError as exc:
                    self._error(type(exc).__name__)
                await asyncio.sleep(0.2)

    async def _stream(self, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", "/api/developers/events", params={"after": self.after}) as response:
            if response.status_code != 200:
                self._error(str(response.status_code))
                return
            self.connects += 1
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    event = _EVENT.decode(line[5:].strip())
                    if event.op == "resync":
                        self._error("resync")
                        return
                    self.received.add(event.id)
                    self.after = event.id
                    self.last = max(self.last, parse(event.id))
                elif line.startswith("id:"):
                    self.after = line[3:].strip()  # a keepalive's cursor: past events not shown to us

    def _error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def subscriber_process(pipe: Connection, bases: list[str], token: str, after: str) -> None:
    """One follower per item of `bases`, from cursor `after`. <- ("collect", final cursor, seconds);
    -> [(received ids, connects, errors)] once each has received the final cursor's event, or after `seconds`."""
    uvloop.run(_followers(pipe, bases, token, after))


async def _followers(pipe: Connection, bases: list[str], token: str, after: str) -> None:
    followers = [Follower(base, after) for base in bases]
    tasks = [asyncio.create_task(f.follow(token)) for f in followers]
    pipe.send("started")
    _, final, seconds = await asyncio.to_thread(pipe.recv)
    end, deadline = parse(final), time.monotonic() + seconds
    while time.monotonic() < deadline and any(f.last < end for f in followers):  # noqa: ASYNC110 (a poll of many)
        await asyncio.sleep(0.1)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    pipe.send([(f.received, f.connects, f.errors) for f in followers])


class Subscribers:
    def __init__(self, bases: list[str], token: str, after: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, theirs = context.Pipe()
        self.process = context.Process(target=subscriber_process, args=(theirs, bases, token, after), daemon=True)
        self.process.start()
        assert self.pipe.recv() == "started"

    async def collect(self, final: str, seconds: float) -> list[tuple[set[str], int, dict[str, int]]]:
        self.pipe.send(("collect", final, seconds))
        results: list[tuple[set[str], int, dict[str, int]]] = await asyncio.to_thread(self.pipe.recv)
        await asyncio.to_thread(self.process.join, 10)
        return results

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
