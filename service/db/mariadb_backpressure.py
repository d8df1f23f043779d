"""Flow control for asyncmy's unbuffered reads (SSCursor), which it lacks: its protocol takes every byte the server
sends into one growing buffer, however far ahead of the reader, and a fetch parses whatever that buffer holds.
A result read slowly (an export to a slow client) would land whole in the process's memory, and the server would
never wait.

`Backpressure` stops the socket's reading while the rows fetched are sent on (asyncio's pause_reading, then
resume_reading before the next fetch, which would otherwise wait for ever): meanwhile the kernel's buffers fill,
TCP holds the server back, and memory holds one fetch's rows and asyncmy's read buffer. The two calls cost no
round trip; reading must be resumed before anything else is sent on the connection (its answer is to be read).
"""

from __future__ import annotations

from typing import Any


class Backpressure:
    def __init__(self, driver: Any) -> None:
        self._transport = driver._transport  # a public attribute of asyncmy's Cython connection
        self.paused = False

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self._transport.pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._transport.resume_reading()
