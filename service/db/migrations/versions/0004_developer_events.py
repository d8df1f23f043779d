"""developer_events: the change feed's transactional outbox, written by triggers on `developers`

Every statement that writes `developers` (the API's single-row writes, the bulk routes' COPY, INSERT ... SELECT
and UPDATE ... FROM, or anyone with SQL access) records what it did in `developer_events`, in its own
transaction: a rolled-back write leaves no event, a committed one always has its events. Statement-level
triggers with transition tables see every row a statement wrote at once, so a statement that wrote one row
records that row (created, updated, deleted), and one that wrote more records one summary (`bulk`: operation,
count, id range, the ids when there are at most 1,000, the specialties when there are at most 100). A COPY of
10,000 rows is one event, never 10,000.

Each statement also calls pg_notify('developer_events', ''): PostgreSQL sends one notification per channel and
payload per transaction, at commit, so listeners are woken once per transaction, whatever it wrote.

Events are ordered by (xid, id): the writer's transaction id (xid8, never wraps), then the order of writing.
Readers serve only events of transactions below their snapshot's xmin, which are all finished, so no event can
appear later behind one already served (service.developers.events.store).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MAX_IDS = 1000  # a summary lists the ids it wrote up to this many; past it, the range and the count
MAX_SPECIALTIES = 100  # and the specialties up to this many; past it, NULL: "any specialty"

# The parts of a summary: `rows` is the transition table (or the union of the old and new ones for an UPDATE).
_SUMMARY = f"""
    INSERT INTO developer_events (op, specialties, bulk)
    SELECT 'bulk', s.specialties, jsonb_build_object(
        'operation', %(operation)s, 'count', a.n, 'first_id', a.first_id, 'last_id', a.last_id,
        'ids', to_jsonb(a.ids), 'specialties', to_jsonb(s.specialties))
    FROM (SELECT count(*) AS n, min(id) AS first_id, max(id) AS last_id,
                 CASE WHEN count(*) <= {MAX_IDS} THEN array_agg(id ORDER BY id) END AS ids
          FROM %(ids)s) AS a,
         (SELECT CASE WHEN count(*) <= {MAX_SPECIALTIES} THEN array_agg(specialty ORDER BY specialty) END
          FROM (SELECT DISTINCT specialty FROM %(specialties)s LIMIT {MAX_SPECIALTIES + 1}) AS d) AS s(specialties)"""  # noqa: S608


def _function(name: str, single: str, operation: str, ids: str, specialties: str) -> str:
    summary = _SUMMARY % {"operation": f"'{operation}'", "ids": ids, "specialties": specialties}
    return f"""
    CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        written bigint;
    BEGIN
        SELECT count(*) INTO written FROM {ids};
        IF written = 0 THEN
            RETURN NULL;
        ELSIF written = 1 THEN
            {single};
        ELSE
            {summary};
        END IF;
        PERFORM pg_notify('developer_events', '');
        RETURN NULL;
    END $$"""  # noqa: S608


_CREATED = """INSERT INTO developer_events (op, developer_id, specialty, specialties, developer)
            SELECT 'created', r.id, r.specialty, ARRAY[r.specialty], to_jsonb(r) FROM new_rows r"""
_UPDATED = """INSERT INTO developer_events (op, developer_id, specialty, specialties, developer)
            SELECT 'updated', n.id, n.specialty, ARRAY(SELECT DISTINCT unnest(ARRAY[o.specialty, n.specialty])),
                   to_jsonb(n)
            FROM new_rows n JOIN old_rows o USING (id)"""
_DELETED = """INSERT INTO developer_events (op, developer_id, specialty, specialties)
            SELECT 'deleted', r.id, r.specialty, ARRAY[r.specialty] FROM old_rows r"""
_BOTH = "(SELECT id, specialty FROM new_rows UNION ALL SELECT id, specialty FROM old_rows)"

TRIGGERS = {
    # function, event, transition tables, body
    "developer_events_insert": (
        "INSERT",
        "NEW TABLE AS new_rows",
        _function("developer_events_insert", _CREATED, "created", "new_rows", "new_rows"),
    ),
    "developer_events_update": (
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        _function("developer_events_update", _UPDATED, "updated", "new_rows", f"{_BOTH} AS b"),
    ),
    "developer_events_delete": (
        "DELETE",
        "OLD TABLE AS old_rows",
        _function("developer_events_delete", _DELETED, "deleted", "old_rows", "old_rows"),
    ),
}


class _XID8(sa.types.UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (13+): it never wraps around, unlike `xid`."""

    cache_ok = True

    def get_col_spec(self, **_: object) -> str:
        return "xid8"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # PostgreSQL's revision: MariaDB's schema is 0007's
    op.create_table(
        "developer_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("xid", _XID8(), server_default=sa.text("pg_current_xact_id()"), nullable=False),
        sa.Column("op", sa.Text(), nullable=False),
        sa.Column("developer_id", sa.BigInteger(), nullable=True),
        sa.Column("specialty", sa.Text(), nullable=True),
        sa.Column("specialties", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("developer", postgresql.JSONB(), nullable=True),
        sa.Column("bulk", postgresql.JSONB(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("statement_timestamp()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_developer_events"),
        sa.CheckConstraint("op IN ('created', 'updated', 'deleted', 'bulk')", name="op_known"),
    )
    op.create_index("ix_developer_events_xid_id", "developer_events", ["xid", "id"], unique=True)
    op.create_index("ix_developer_events_at", "developer_events", ["at"])
    # The newest event retention has deleted: a cursor at or below it may have missed events (410).
    op.create_table(
        "developer_events_horizon",
        sa.Column("xid", _XID8(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("one", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.PrimaryKeyConstraint("one", name="pk_developer_events_horizon"),
        sa.CheckConstraint("one", name="one_row"),
    )
    for name, (event, tables, function) in TRIGGERS.items():
        op.execute(function)
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON developers REFERENCING {tables} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # PostgreSQL's revision: MariaDB's schema is 0007's
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON developers")
        op.execute(f"DROP FUNCTION {name}()")
    op.drop_table("developer_events_horizon")
    op.drop_table("developer_events")
