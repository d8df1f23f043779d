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
ASYNCPG = pytest.mark.postgresql_only(
    "asyncpg's own calls at the PostgreSQL wire (round trips counted, COPY, unnamed statements)"
)
PGQUEUER = pytest.mark.postgresql_only("pgqueuer's tables and log are the PostgreSQL job queue's internals")
SESSIONS = pytest.mark.postgresql_only(
    "finds the app's sessions in pg_stat_activity (MariaDB shows no program_name without performance_schema)"
)
MIGRATIONS = pytest.mark.postgresql_only("migrations 0001-0006 and their constraints are PostgreSQL's schema history")
MODELS = pytest.mark.postgresql_only(
    "the models are compared with PostgreSQL's migrated schema, and MariaDB's schema with PostgreSQL's at head, "
    "its migrations down and up again (tests/db/test_mariadb_schema.py)"
)
SERIALIZABLE_SNAPSHOTS = pytest.mark.postgresql_only(
    "PostgreSQL's serializable snapshots: a stale one fails with 40001/40P01, forced here by a held row watched in "
    "pg_stat_activity or a PL/pgSQL trigger (MariaDB's SERIALIZABLE locks what it reads; its replay is on 1213)"
)
DEFERRABLE = pytest.mark.postgresql_only("SERIALIZABLE READ ONLY DEFERRABLE snapshots are PostgreSQL's")
EXPORT_COPY = pytest.mark.postgresql_only(
    "watches the export's COPY in pg_stat_activity (MariaDB's export streams a server-side cursor)"
)
ROLE_LIMIT = pytest.mark.postgresql_only(
    "refuses connections with a role's CONNECTION LIMIT 0 (MariaDB's MAX_USER_CONNECTIONS 0 means no limit)"
)
IDLE_TIMEOUT_MS = pytest.mark.postgresql_only(
    "reads PostgreSQL's idle_in_transaction_session_timeout (MariaDB's idle_transaction_timeout is whole seconds)"
)
OUTBOX_XIDS = pytest.mark.postgresql_only(
    "the PostgreSQL outbox's cursors are transaction ids (xid8, pg_current_xact_id); MariaDB's are sequencer stamps"
)
LISTEN = pytest.mark.postgresql_only("the feed's LISTEN connection is PostgreSQL's (MariaDB's feed polls)")
TIMESTAMPTZ = pytest.mark.postgresql_only(
    "timestamptz: a writer's own TimeZone changes no stored time on PostgreSQL (MariaDB's DATETIME(6) takes the "
    "writer's time_zone; the service sets '+00:00' on every connection of its own)"
)
COPY_CHUNKS = pytest.mark.postgresql_only(
    "PostgreSQL's bulk import: a summary event per COPY chunk, all in one transaction id (MariaDB's summaries: "
    "tests/developers/test_bulk_mariadb.py)"
)
PG_REFUSALS = pytest.mark.postgresql_only(
    "PostgreSQL's refusal messages, from an embedded PostgreSQL of its own that checks passwords"
)
BOTH_SERVERS = pytest.mark.postgresql_only(
    "compares what PostgreSQL writes with what MariaDB writes: it runs where the run's database is PostgreSQL"
)
PGQUEUER_SCHEDULER = pytest.mark.postgresql_only(
    "pgqueuer's scheduler runs the retention deletions on PostgreSQL (MariaDB's worker loop runs its own, "
    "tested in tests/imports/test_imports_mariadb.py)"
)
