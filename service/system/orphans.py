"""A granian worker of `devdir run` never outlives `devdir`, nor granian's main process.

`devdir run` starts granian's main process in a session of its own (litestar-granian), and that process starts
the workers that run this app. Killed outright (SIGKILL, the OOM killer), `devdir` tells nobody, and the workers
would go on serving as orphans, on the port and on the database. So each worker watches, from its event loop, two
processes through pidfds (Linux): `devdir`, whose PID it finds in DEVDIR_PID, and its own parent. When `devdir`
is gone it asks granian's main process to stop (SIGTERM: every worker then stops as on any shutdown); when its
parent is gone it stops itself. PR_SET_PDEATHSIG would only see the parent, which outlives `devdir`; a pidfd
cannot be confused by a reused PID and needs no polling.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

from litestar import Litestar

DEVDIR_PID = "DEVDIR_PID"


def announce_devdir() -> None:
    """Tell the processes `devdir` starts (in their environment) which process they must not outlive."""
    os.environ[DEVDIR_PID] = str(os.getpid())


async def stop_with_devdir(_: Litestar) -> None:
    """Start-up hook: in a worker started under `devdir` (and on Linux), stop when `devdir` or the parent ends."""
    devdir = int(os.environ.get(DEVDIR_PID, os.getpid()))
    if devdir == os.getpid() or not hasattr(os, "pidfd_open"):
        return  # not under `devdir` (a test, plain granian), or `devdir` itself building the app for a command
    parent = _open(os.getppid())
    if devdir != os.getppid():
        _when_ended(_open(devdir), lambda: _stop(parent))
    _when_ended(parent, lambda: _stop(None))


def _open(pid: int) -> int | None:
    """A pidfd of process `pid`; None if it has already ended."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def _when_ended(pidfd: int | None, then: Callable[[], None]) -> None:
    """Call `then` once the process of `pidfd` has ended (at once if it already had: `pidfd` None)."""
    if pidfd is None:
        then()
        return
    loop = asyncio.get_running_loop()

    def ended() -> None:
        loop.remove_reader(pidfd)
        then()

    loop.add_reader(pidfd, ended)  # a pidfd becomes readable when its process ends


def _stop(parent: int | None) -> None:
    """SIGTERM to granian's main process (it stops every worker); to this worker if that process is gone too."""
    try:
        if parent is not None:
            signal.pidfd_send_signal(parent, signal.SIGTERM)
            return
    except ProcessLookupError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)
