"""Process tuning applied once the app has started: Python's cyclic garbage collector, sized for a server.

A started app holds tens of thousands of long-lived objects (routes, signature models, the OpenAPI document,
SQLAlchemy's and msgspec's caches), and every full collection walks them all again; a request allocates a few
hundred short-lived objects, so the default threshold (a collection every 700 net allocations) runs the collector
several times per request under load. Freezing what exists after start-up takes it out of every later collection
(it is never garbage), and a higher first threshold collects young cycles less often. Measured on the hot reads
(wrk, one worker): about 10% less CPU per request at 32 clients and up to 20% at 128. Memory that reference
counting frees is unaffected; only cyclic garbage waits a little longer.
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
