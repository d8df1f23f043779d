"""Process tuning applied once the app has started: Python's cyclic garbage collector, sized for a server.

What exists after start-up (routes, signature models, the OpenAPI document, caches) is frozen out of every later
collection, and a higher first threshold collects young cycles less often than every 700 net allocations, which
under load ran the collector several times per request. Memory that reference counting frees is unaffected; only
cyclic garbage waits a little longer. The measurement: docs/decisions/0004-garbage-collector-tuning.md.
"""

from __future__ import annotations

import gc

from litestar import Litestar

YOUNG_THRESHOLD = 20_000


def tune_garbage_collector(_: Litestar) -> None:
    gc.collect()
    gc.freeze()
    older, oldest = gc.get_threshold()[1:]
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
