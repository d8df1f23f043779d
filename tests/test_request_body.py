"""The slow-upload attack, scaled down, over real sockets: more trickling uploads than the pool has connections,
on both routes that stream an upload. At most BULK_MAX_CONCURRENT of them hold a connection, the rest are 503 at
once, every other request keeps being served, and the trickle is cut (BODY_MIN_BYTES_PER_SECOND), its slot freed."""

from __future__ import annotations

from service.core.settings import Settings
from service.developers.bulk.parsers import FIRST_CHUNK_ROWS
from tests.database import fetch
from tests.developers.api import encode, people
from tests.developers.export_support import serving
from tests.developers.feed_client import bearer, until
from tests.raw_http import SlowUpload, port_of

POOL, UPLOADS_AT_ONCE = 4, 2
# What each upload sends at once: rows enough for the bulk import to COPY a first chunk, so that it holds its
# connection inside its transaction (an import submission holds one from its first byte).
ROWS = FIRST_CHUNK_ROWS + 1
IDLE, MIN_RATE = 3.0, 10_000.0  # seconds, bytes a second: each upload may take IDLE + about 7 s of waiting
NDJSON = {"Content-Type": "application/x-ndjson"}


def uploads(url: str) -> list[SlowUpload]:
    """Twice as many trickling uploads as the pool has connections, alternating between the two routes."""
    paths = ["/api/developers/bulk", "/api/developers/imports"] * POOL
    return [
        SlowUpload(
            port_of(url), path, NDJSON | bearer("editor"), encode("ndjson", people(ROWS, start=i * ROWS)), interval=0.5
        )
        for i, path in enumerate(paths)
    ]


async def test_slow_uploads_leave_the_pool_to_other_requests_and_are_cut(settings: Settings) -> None:
    limits = {
        "db_pool_size": POOL,
        "db_max_overflow": 0,
        "db_pool_timeout": 2.0,
        "bulk_max_concurrent": UPLOADS_AT_ONCE,
        "body_idle_timeout_seconds": IDLE,
        "body_min_bytes_per_second": MIN_RATE,
    }
    jobs = "SELECT count(*) FROM import_jobs"
    jobs_before = (await fetch(settings.database_url, jobs))[0][0]
    async with serving(settings, **limits) as served:
        attack = [upload.begin() for upload in uploads(str(served.api.base_url))]
        try:
            await until(lambda: served.checked_out() >= UPLOADS_AT_ONCE, "the uploads to hold connections")
            # Every other request is served meanwhile, reads and writes alike.
            for n in range(POOL * 2):
                listed = await served.api.get("/api/developers", params={"limit": 1})
                other = {"name": "Other", "email": f"other{n}@x.io", "specialty": "s"}
                created = await served.api.post("/api/developers", json=other)
                assert (listed.status_code, created.status_code) == (200, 201), (listed.text, created.text)
            # No more uploads than the limit hold a connection; the others were refused before they read their body
            # or took a connection.
            await until(lambda: served.checked_out() == UPLOADS_AT_ONCE, "only the uploads to hold connections")
            refusals = len(attack) - UPLOADS_AT_ONCE
            await until(lambda: sum(u.answer is not None for u in attack) == refusals, "the refusals")
            refused = [upload.answer for upload in attack if upload.answer is not None]
            assert {answer.status for answer in refused} == {503}, refused
            assert all(answer.headers["retry-after"] == "1" for answer in refused)
            assert all("BULK_MAX_CONCURRENT" in answer.json()["detail"] for answer in refused)
            holding = [upload for upload in attack if upload.answer is None]

            # The trickle is cut: 408, nothing written, the connections back in the pool.
            answers = [await upload.answered(within=60) for upload in holding]
            assert [answer.status for answer in answers] == [408, 408], answers
            assert all("BODY_MIN_BYTES_PER_SECOND" in answer.json()["detail"] for answer in answers)
            assert all(upload.trickled > 0 for upload in holding)  # never idle for BODY_IDLE_TIMEOUT_SECONDS
            await until(lambda: served.checked_out() == 0, "the uploads' connections to be freed")
        finally:
            for upload in attack:
                await upload.stop()
        imported = await fetch(served.database_url, "SELECT count(*) FROM developers WHERE specialty = 'imported'")
        assert imported[0][0] == 0
        assert (await fetch(served.database_url, jobs))[0][0] == jobs_before
