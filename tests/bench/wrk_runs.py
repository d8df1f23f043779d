"""One wrk run of the read benchmark, and the summary of many: what wrk answered (requests/s, requests, non-2xx
answers, socket errors), and a median with its spread (min, max) over the interleaved rounds."""

from __future__ import annotations

import re
import statistics
import subprocess
from pathlib import Path
from typing import NamedTuple


class Run(NamedTuple):
    rate: float  # requests/s
    count: int  # requests answered
    non_2xx: int  # answers wrk counts as "Non-2xx or 3xx" (the service's 503s among them)
    socket_errors: str  # wrk's "Socket errors: ..." line, empty when there were none


def wrk_run(url: str, script: Path, env: dict[str, str], duration: int, connections: int) -> Run:
    # --timeout above DB_POOL_TIMEOUT: a request starved of a connection comes back as the service's 503 and is
    # counted as such, not as a client-side timeout.
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script), url]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    rate, count = re.search(r"Requests/sec:\s+([\d.]+)", output), re.search(r"(\d+) requests in", output)
    assert rate, output
    assert count, output
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: .*", output)
    return Run(
        float(rate.group(1)),
        int(count.group(1)),
        int(non_2xx.group(1)) if non_2xx else 0,
        errors.group(0) if errors else "",
    )


def spread(values: list[float]) -> str:
    """`median (min max)`, two decimals."""
    return f"{statistics.median(values):.2f} ({min(values):.2f} {max(values):.2f})"
