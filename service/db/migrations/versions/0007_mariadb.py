"""MariaDB and MySQL: the schema of 0001 to 0006, as those servers can hold it (nothing on PostgreSQL)

Revisions 0001 to 0006 are PostgreSQL's and do nothing on MariaDB; this one creates the same tables there at once,
so both servers share one history from here on. What differs, and why:
- Text columns are VARCHAR of the API's limits (an index cannot cover TEXT), utf8mb4 with the binary collation:
  equality and order by code point, as PostgreSQL's C.UTF-8 collation compares them.
- Timestamps are DATETIME(6) in UTC (every connection's time_zone is +00:00: service.db.mariadb).
- Emails are unique whatever their case through a generated column, `email_lower`, with the unique index of
  PostgreSQL's name: MariaDB indexes no expression.
- NFC: MariaDB has no normalize(); the service puts every email, name and specialty in NFC as it decodes a body
  (service.core.validation), bulk rows included, but the database does not check it (README, "PostgreSQL and
  MariaDB").
- The change feed's outbox: row triggers (MariaDB has no statement-level ones) record each row a statement
  writes, unless the session says it writes a summary itself (`@devdir_bulk`: then the UPDATE trigger tallies
  the old specialties only it sees, service.developers.bulk.mariadb_events). An event
  has no order key when it is written: `seq` stays NULL until the feed's sequencer, one process at a time, stamps
  committed events in increasing order (`FOR UPDATE SKIP LOCKED` passes over rows whose transaction is still open).
  An event committed later is stamped later, so a reader following `seq` never skips one.
- The job queue: `import_queue` holds a queued job's entry; a worker locks it (`FOR UPDATE SKIP LOCKED`) in the
  transaction that imports the rows, and deletes it in that transaction: a worker that dies releases the lock and
  the job is taken again; two workers can never hold it at once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BIN = "utf8mb4_bin"
NAME_MAX, SPECIALTY_MAX, EMAIL_MAX = 200, 100, 254
ROLES = "('viewer', 'editor', 'admin')"
STATUSES = "('queued', 'running', 'succeeded', 'failed', 'cancelled')"
ON_CONFLICT = "('error', 'skip', 'update')"
OPS = (
    "('created', 'updated', 'deleted', 'bulk', 'import.queued', 'import.running', 'import.succeeded', "
    "'import.failed', 'import.cancelled')"
)
NOW = sa.text("CURRENT_TIMESTAMP(6)")
TABLE_OPTIONS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": BIN}


def _text(length: int) -> sa.String:
    return sa.String(length, collation=BIN)


def _at() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


# A developer as PostgreSQL's to_jsonb(row) writes it, timestamps in RFC 3339 UTC (the session's zone is UTC).
_STAMP = "DATE_FORMAT({0}, '%Y-%m-%dT%H:%i:%s.%fZ')"
_DEVELOPER = (
    "JSON_OBJECT('id', NEW.id, 'name', NEW.name, 'email', NEW.email, 'specialty', NEW.specialty, "
    f"'created_at', {_STAMP.format('NEW.created_at')}, 'updated_at', {_STAMP.format('NEW.updated_at')}, "
    "'version', NEW.version)"
)
_INSERT_EVENT = "INSERT INTO developer_events (op, developer_id, specialty, specialties, developer) VALUES"
TRIGGERS = {
    "developer_events_insert": (
        "INSERT",
        f"{_INSERT_EVENT} ('created', NEW.id, NEW.specialty, JSON_ARRAY(NEW.specialty), {_DEVELOPER})",
    ),
    "developer_events_update": (
        "UPDATE",
        f"{_INSERT_EVENT} ('updated', NEW.id, NEW.specialty, IF(OLD.specialty = NEW.specialty, "
        f"JSON_ARRAY(NEW.specialty), JSON_ARRAY(LEAST(OLD.specialty, NEW.specialty), "
        f"GREATEST(OLD.specialty, NEW.specialty))), {_DEVELOPER})",
    ),
    "developer_events_delete": (
        "DELETE",
        f"{_INSERT_EVENT} ('deleted', OLD.id, OLD.specialty, JSON_ARRAY(OLD.specialty), NULL)",
    ),
}
# Under `@devdir_bulk` a row trigger writes no event: the bulk service writes one summary per statement, as
# PostgreSQL's statement triggers do (0004). It knows what its INSERTs and DELETEs wrote (ids, specialties); an
# UPDATE's trigger tallies what only it sees, the old specialties, in session variables per statement
# (`@devdir_updated_n`, `_first`, `_last`, `_ids`: up to MAX_IDS ids, comma-separated, `_sp`: the distinct old
# and new specialties, NUL-delimited (no text holds a NUL), `_spn`: how many, counted to MAX_SPECIALTIES + 1),
# which the service reads and clears (service.developers.bulk.mariadb_events).
MAX_IDS, MAX_SPECIALTIES = 1000, 100


def _tally(operation: str, row: str, *specialties: str) -> str:
    v = f"@devdir_{operation}"
    counted = (
        f"SET {v}_n = IFNULL({v}_n, 0) + 1, {v}_first = LEAST(IFNULL({v}_first, {row}.id), {row}.id), "
        f"{v}_last = GREATEST(IFNULL({v}_last, {row}.id), {row}.id), "
        f"{v}_ids = IF({v}_n > {MAX_IDS}, NULL, CONCAT_WS(',', {v}_ids, {row}.id));"
    )
    for specialty in specialties:
        counted += (
            f" IF IFNULL({v}_spn, 0) <= {MAX_SPECIALTIES} AND "
            f"LOCATE(CONCAT(CHAR(0), {specialty}, CHAR(0)), IFNULL({v}_sp, CHAR(0))) = 0 THEN "
            f"SET {v}_sp = CONCAT(IFNULL({v}_sp, CHAR(0)), {specialty}, CHAR(0)), {v}_spn = IFNULL({v}_spn, 0) + 1; "
            "END IF;"
        )
    return counted


# What a row trigger does under `@devdir_bulk`: nothing for INSERT and DELETE (one more statement per row halves a
# bulk INSERT's speed), the tally for UPDATE.
TALLIES = {"INSERT": "", "UPDATE": "ELSE " + _tally("updated", "NEW", "OLD.specialty", "NEW.specialty"), "DELETE": ""}
_JOB_EVENT = """INSERT INTO developer_events (op, job) VALUES (CONCAT('import.', NEW.status), JSON_OBJECT(
        'id', NEW.id, 'status', NEW.status, 'on_conflict', NEW.on_conflict, 'rows_total', NEW.rows_total,
        'rows_done', NEW.rows_done, 'created', NEW.created, 'updated', NEW.updated, 'skipped', NEW.skipped,
        'submitted_by', NEW.submitted_by))"""


def _mariadb() -> bool:
    return op.get_bind().dialect.name == "mysql"


def upgrade() -> None:
    if not _mariadb():
        return
    _developers()
    _users()
    _events()
    _imports()


def _developers() -> None:
    op.create_table(
        "developers",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", _text(NAME_MAX), nullable=False),
        sa.Column("email", _text(EMAIL_MAX), nullable=False),
        sa.Column("specialty", _text(SPECIALTY_MAX), nullable=False),
        sa.Column("created_at", _at(), server_default=NOW, nullable=False),
        sa.Column("updated_at", _at(), server_default=NOW, nullable=False),
        sa.Column("version", sa.BigInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("email_lower", _text(EMAIL_MAX), sa.Computed("lower(email)", persisted=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_developers"),
        sa.CheckConstraint(f"char_length(name) BETWEEN 1 AND {NAME_MAX}", name="name_length"),
        sa.CheckConstraint(f"char_length(specialty) BETWEEN 1 AND {SPECIALTY_MAX}", name="specialty_length"),
        sa.CheckConstraint(f"char_length(email) BETWEEN 3 AND {EMAIL_MAX}", name="email_length"),
        **TABLE_OPTIONS,
    )
    op.create_index("uq_developers_email_lower", "developers", ["email_lower"], unique=True)
    op.create_index("ix_developers_specialty_name_id", "developers", ["specialty", "name", "id"])
    op.create_index("ix_developers_name_id", "developers", ["name", "id"])


def _users() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("email", _text(EMAIL_MAX), nullable=False),
        sa.Column("password_hash", _text(255), nullable=False),
        sa.Column("role", _text(16), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_at", _at(), server_default=NOW, nullable=False),
        sa.Column("updated_at", _at(), server_default=NOW, nullable=False),
        sa.Column("email_lower", _text(EMAIL_MAX), sa.Computed("lower(email)", persisted=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.CheckConstraint(f"char_length(email) BETWEEN 3 AND {EMAIL_MAX}", name="email_length"),
        sa.CheckConstraint(f"role IN {ROLES}", name="role_known"),
        **TABLE_OPTIONS,
    )
    op.create_index("uq_users_email_lower", "users", ["email_lower"], unique=True)


def _events() -> None:
    op.create_table(
        "developer_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),  # NULL until the sequencer stamps it
        sa.Column("op", _text(32), nullable=False),
        sa.Column("developer_id", sa.BigInteger(), nullable=True),
        sa.Column("specialty", _text(SPECIALTY_MAX), nullable=True),
        sa.Column("specialties", sa.JSON(), nullable=True),
        sa.Column("developer", sa.JSON(), nullable=True),
        sa.Column("bulk", sa.JSON(), nullable=True),
        sa.Column("job", sa.JSON(), nullable=True),
        sa.Column("at", _at(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_developer_events"),
        sa.CheckConstraint(f"op IN {OPS}", name="op_known"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_developer_events_seq_id", "developer_events", ["seq", "id"], unique=True)
    op.create_index("ix_developer_events_at", "developer_events", ["at"])
    op.create_table(
        "developer_events_horizon",
        sa.Column("one", sa.Boolean(), server_default=sa.text("1"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("one", name="pk_developer_events_horizon"),
        sa.CheckConstraint("one", name="one_row"),
        **TABLE_OPTIONS,
    )
    # The sequencer's last stamp; its row lock lets one sequencer at a time stamp events.
    op.create_table(
        "developer_events_sequence",
        sa.Column("one", sa.Boolean(), server_default=sa.text("1"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("one", name="pk_developer_events_sequence"),
        sa.CheckConstraint("one", name="one_row"),
        **TABLE_OPTIONS,
    )
    op.execute("INSERT INTO developer_events_sequence (one, seq) VALUES (1, 0)")
    for name, (event, insert) in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON developers FOR EACH ROW "
            f"BEGIN IF @devdir_bulk IS NULL THEN {insert}; {TALLIES[event]} END IF; END"
        )


def _imports() -> None:
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("status", _text(16), nullable=False),
        sa.Column("on_conflict", _text(16), nullable=False),
        sa.Column("media_type", _text(255), nullable=False),
        sa.Column("rows_total", sa.BigInteger(), nullable=True),
        sa.Column("rows_done", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=True),
        sa.Column("updated", sa.BigInteger(), nullable=True),
        sa.Column("skipped", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.text("0"), nullable=False),
        sa.Column("submitted_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", _at(), server_default=NOW, nullable=False),
        sa.Column("started_at", _at(), nullable=True),
        sa.Column("finished_at", _at(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_import_jobs"),
        sa.CheckConstraint(f"status IN {STATUSES}", name="status_known"),
        sa.CheckConstraint(f"on_conflict IN {ON_CONFLICT}", name="on_conflict_known"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_import_jobs_submitted_by_id", "import_jobs", ["submitted_by", "id"])
    op.create_index("ix_import_jobs_finished_at", "import_jobs", ["finished_at"])
    op.create_table(
        "import_uploads",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", mysql.LONGBLOB(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["import_jobs.id"], name="fk_import_uploads_job_id_import_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_import_uploads"),
        **TABLE_OPTIONS,
    )
    # A queued import's entry: locked by the worker running it, deleted with its outcome.
    op.create_table(
        "import_queue",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("run_after", _at(), server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["import_jobs.id"], name="fk_import_queue_job_id_import_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name="pk_import_queue"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_import_queue_run_after", "import_queue", ["run_after", "job_id"])
    op.execute(f"CREATE TRIGGER import_jobs_created AFTER INSERT ON import_jobs FOR EACH ROW {_JOB_EVENT}")
    op.execute(
        "CREATE TRIGGER import_jobs_status AFTER UPDATE ON import_jobs FOR EACH ROW "
        f"BEGIN IF NOT (OLD.status <=> NEW.status) THEN {_JOB_EVENT}; END IF; END"
    )


def downgrade() -> None:
    if not _mariadb():
        return
    for table in (
        "import_queue",
        "import_uploads",
        "import_jobs",
        "developer_events_sequence",
        "developer_events_horizon",
        "developer_events",
        "users",
        "developers",
    ):
        op.drop_table(table)
