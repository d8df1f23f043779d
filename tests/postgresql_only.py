"""The features only PostgreSQL has, each named once: a test of one carries its mark (`pytestmark = POOLER`, or
`@STANDBYS` on a test) and skips, with the reason, when the whole run is on MariaDB (tests/conftest.py). Everything
a client sees through the API runs on both servers, so a mark here names a feature, never a failure to port."""

from __future__ import annotations

import pytest

POOLER = pytest.mark.postgresql_only("PgBouncer is PostgreSQL's: DB_POOLER=transaction and its guard at the wire")
STANDBYS = pytest.mark.postgresql_only(
    "reads on PostgreSQL hot standbys: DATABASE_REPLICA_URLS, WAL positions, the Consistency-Token"
)
EMBEDDED = pytest.mark.postgresql_only("zero setup is the embedded PostgreSQL: `devdir run` without DATABASE_URL")
ASYNCPG = pytest.mark.postgresql_only("asyncpg's statements at the PostgreSQL wire (round trips, unnamed statements)")
PGQUEUER = pytest.mark.postgresql_only("pgqueuer's tables and log are the PostgreSQL job queue's internals")
SESSIONS = pytest.mark.postgresql_only(
    "finds the app's sessions in pg_stat_activity (MariaDB shows no program_name without performance_schema)"
)
MIGRATIONS = pytest.mark.postgresql_only("migrations 0001-0006 and their constraints are PostgreSQL's schema history")
