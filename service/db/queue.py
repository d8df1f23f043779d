"""The job queue's names: pgqueuer's tables, type, trigger and channel, and the entrypoint of an import.

pgqueuer reads its object names from PGQUEUER_* environment variables unless they are given: every name is given
here, so the schema the migration (0005) created is the one every process uses, whatever the environment says.
"""

from __future__ import annotations

from pgqueuer.domain.settings import DBSettings, Durability
from pgqueuer.domain.types import Channel

ENTRYPOINT = "import_developers"  # the queue entry's payload is the job id, as ASCII digits
SETTINGS = DBSettings(
    prefix="",
    db_schema=None,
    channel=Channel("ch_pgqueuer"),
    function="fn_pgqueuer_changed",
    statistics_table="pgqueuer_statistics",
    queue_status_type="pgqueuer_status",
    queue_table="pgqueuer",
    queue_table_log="pgqueuer_log",
    trigger="tg_pgqueuer_changed",
    schedules_table="pgqueuer_schedules",
    durability=Durability.durable,
)
TABLES = ("pgqueuer", "pgqueuer_log", "pgqueuer_schedules", "pgqueuer_statistics")
