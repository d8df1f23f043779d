"""import_jobs, import_uploads and pgqueuer's queue: background imports, and their `import.*` change events

`import_jobs` holds each import's status and progress; `import_uploads` the body it was submitted with, in
pieces of about 1 MiB (storage EXTERNAL: stored once, read once, never worth compressing). pgqueuer's tables come
from pgqueuer's own install DDL (service.imports.queue), so they are exactly what its queries expect.

The change feed's outbox learns five more ops, `import.queued|running|succeeded|failed|cancelled`, and a `job`
column with the job's summary: a trigger on `import_jobs` writes one event when a job is created and one each
time its status changes, in the writer's transaction (an import's `succeeded` commits with its rows), and wakes
the feed's listeners as the developers triggers do. `specialties` stays NULL, so every filter lets them through.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.util import await_only

from service.imports import queue

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STATUSES = "('queued', 'running', 'succeeded', 'failed', 'cancelled')"
ON_CONFLICT = "('error', 'skip', 'update')"
DEVELOPER_OPS = "('created', 'updated', 'deleted', 'bulk')"
ALL_OPS = (
    "('created', 'updated', 'deleted', 'bulk', 'import.queued', 'import.running', 'import.succeeded', "
    "'import.failed', 'import.cancelled')"
)

_EVENT_FUNCTION = """
    CREATE FUNCTION import_jobs_event() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO developer_events (op, job) VALUES ('import.' || NEW.status, jsonb_build_object(
            'id', NEW.id, 'status', NEW.status, 'on_conflict', NEW.on_conflict, 'rows_total', NEW.rows_total,
            'rows_done', NEW.rows_done, 'created', NEW.created, 'updated', NEW.updated, 'skipped', NEW.skipped,
            'submitted_by', NEW.submitted_by));
        PERFORM pg_notify('developer_events', '');
        RETURN NULL;
    END $$"""


def _script(sql: str) -> None:
    """Run a script of several statements: asyncpg's simple-query protocol takes them in one go, where a
    prepared statement (what SQLAlchemy sends) takes one. Same connection, same transaction."""
    driver = op.get_bind().connection.dbapi_connection.driver_connection  # type: ignore[union-attr]
    await_only(driver.execute(sql))


def upgrade() -> None:
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("on_conflict", sa.Text(), nullable=False),
        sa.Column("media_type", sa.Text(), nullable=False),
        sa.Column("rows_total", sa.BigInteger(), nullable=True),
        sa.Column("rows_done", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=True),
        sa.Column("updated", sa.BigInteger(), nullable=True),
        sa.Column("skipped", sa.BigInteger(), nullable=True),
        sa.Column("error", postgresql.JSONB(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("submitted_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_import_jobs"),
        sa.CheckConstraint(f"status IN {STATUSES}", name="status_known"),
        sa.CheckConstraint(f"on_conflict IN {ON_CONFLICT}", name="on_conflict_known"),
    )
    op.create_index("ix_import_jobs_submitted_by_id", "import_jobs", ["submitted_by", "id"])
    op.create_index("ix_import_jobs_finished_at", "import_jobs", ["finished_at"])
    op.create_table(
        "import_uploads",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["import_jobs.id"], name="fk_import_uploads_job_id_import_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_import_uploads"),
    )
    op.execute("ALTER TABLE import_uploads ALTER COLUMN data SET STORAGE EXTERNAL")
    _script(queue.install_sql())

    op.add_column("developer_events", sa.Column("job", postgresql.JSONB(), nullable=True))
    op.drop_constraint("op_known", "developer_events", type_="check")
    op.create_check_constraint("op_known", "developer_events", f"op IN {ALL_OPS}")
    op.execute(_EVENT_FUNCTION)
    op.execute(
        "CREATE TRIGGER import_jobs_created AFTER INSERT ON import_jobs "
        "FOR EACH ROW EXECUTE FUNCTION import_jobs_event()"
    )
    op.execute(
        "CREATE TRIGGER import_jobs_status AFTER UPDATE OF status ON import_jobs "
        "FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION import_jobs_event()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER import_jobs_status ON import_jobs")
    op.execute("DROP TRIGGER import_jobs_created ON import_jobs")
    op.execute("DROP FUNCTION import_jobs_event()")
    op.execute("DELETE FROM developer_events WHERE op LIKE 'import.%'")
    op.drop_constraint("op_known", "developer_events", type_="check")
    op.create_check_constraint("op_known", "developer_events", f"op IN {DEVELOPER_OPS}")
    op.drop_column("developer_events", "job")
    _script(queue.uninstall_sql())
    op.drop_table("import_uploads")
    op.drop_table("import_jobs")
