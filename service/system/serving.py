"""How `devdir run` serves: granian's limits against slow clients, the open files they need, and a port of its own.

Slow-header clients (slowloris) each hold one of a granian worker's connection slots (GRANIAN_BACKPRESSURE) until
their headers end; 1,100 that sent a byte every few seconds took all 1,024 slots granian gives by default, and
/health and every request then waited in the kernel's accept queue. So `devdir run` defaults to:
- GRANIAN_HTTP=1: HTTP/1.1 only (what an ingress and the kubelet speak). In `auto` mode granian waits for a
  connection's first bytes to tell HTTP/1 from HTTP/2 with no timeout at all: one that sends nothing stays open.
- GRANIAN_HTTP1_HEADER_READ_TIMEOUT=10000: a connection whose request headers are not complete 10 s after it
  opened, or after its previous answer (an idle keep-alive connection), is closed.
- GRANIAN_BACKPRESSURE=8192 slots per worker: a connection waiting for its headers is granian's alone (Rust, no
  Python) and costs it about 17 KB (a worker held 160 MB with 1,100 of them, 278 MB with 8,000), so the slots
  outnumber what one client can hold well before they cost the pod its memory.
- open files: the soft limit raised to the hard one (a container's soft limit may be 1,024), since every
  connection is a file; where the hard limit is lower than the slots, the default slots are lowered to fit.
Each is only a default: the environment, or the flags of `devdir run`, override it. What the ingress in front
must do about slow clients is in deploy/README.md.

granian binds its port with SO_REUSEPORT, so a second `devdir run` on a busy port would share it with the first,
each answering some of the requests; the CLI's server lifespan refuses such a port before granian starts.

litestar-granian passes Ctrl-C (SIGINT) on to granian's processes as it came. For the second or two granian's
main process spends importing, before it sets its own handlers, Python's default handler turns it into a
KeyboardInterrupt traceback; SIGTERM ends that process silently then, and once granian runs it stops it exactly
as SIGINT does. So while `devdir run` serves, SIGINT is passed on as SIGTERM.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import click
from click import Group
from litestar import Litestar
from litestar.plugins import CLIPlugin

SLOW_CLIENT_DEFAULTS = {"GRANIAN_HTTP": "1", "GRANIAN_HTTP1_HEADER_READ_TIMEOUT": "10000"}
BACKPRESSURE = 8192
# Files a worker needs besides its clients' connections: database pools, the change feed, logs, the runtime.
OTHER_FILES = 256
# What the soft limit is raised to when the hard one is unlimited.
UNLIMITED_FILES = 1 << 20


class PortInUse(RuntimeError):
    """The address `devdir run` was asked to serve on is taken (or cannot be bound); the message names it."""


def configure_server(environ: dict[str, str] | os._Environ[str]) -> None:
    """Set granian's defaults for slow clients in `environ` (the flags of `devdir run` read them), where unset."""
    for name, value in SLOW_CLIENT_DEFAULTS.items():
        environ.setdefault(name, value)
    files = raise_open_files_limit()
    environ.setdefault("GRANIAN_BACKPRESSURE", str(max(1, min(BACKPRESSURE, files - OTHER_FILES))))


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (its children inherit it); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = UNLIMITED_FILES if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft
        return wanted
    return UNLIMITED_FILES if soft == resource.RLIM_INFINITY else soft


def refuse_busy_port(host: str, port: int) -> None:
    """Raise PortInUse unless `host:port` can be bound without port sharing (SO_REUSEPORT) right now."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            # Connections of a server stopped a moment ago (TIME_WAIT) do not make the port busy; a listener does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = "the port is in use by another server" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise PortInUse(f"cannot serve on {host}:{port}: {reason}") from exc


class ServeGuard(CLIPlugin):
    """Around granian in `devdir run`: the host and port it was given must be free before it starts (not checked
    with --uds or --fd), and Ctrl-C reaches it as SIGTERM while it runs."""

    def on_cli_init(self, cli: Group) -> None:
        return None  # no command of its own

    @contextmanager
    def server_lifespan(self, app: Litestar) -> Iterator[None]:
        params = click.get_current_context().params
        if params.get("uds") is None and params.get("fd") is None:
            refuse_busy_port(params["host"], params["port"])
        with _interrupt_passed_on_as_terminate():
            yield


@contextmanager
def _interrupt_passed_on_as_terminate() -> Iterator[None]:
    from litestar_granian.supervisor import _GranianSupervisor

    forward = _GranianSupervisor.forward

    def forward_as_terminate(supervisor: _GranianSupervisor, signum: int) -> None:
        forward(supervisor, signal.SIGTERM if signum == signal.SIGINT else signum)

    setattr(_GranianSupervisor, "forward", forward_as_terminate)  # noqa: B010  (mypy: a method is assigned)
    try:
        yield
    finally:
        setattr(_GranianSupervisor, "forward", forward)  # noqa: B010
