"""developers.version: the row's version, which every write increments, for ETags and If-Match

`ADD COLUMN ... NOT NULL DEFAULT 1` with a constant default changes only the catalog (PostgreSQL 11+): no rewrite
of the table, whatever its size. Every existing row starts at version 1.

The change feed's triggers (0004) record a written row with `to_jsonb`, which now carries `version` too: an event's
developer has the validator the row had after that write. Events recorded before this migration have none.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # PostgreSQL's revision: MariaDB's schema is 0007's
    op.add_column("developers", sa.Column("version", sa.BigInteger(), server_default=sa.text("1"), nullable=False))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # PostgreSQL's revision: MariaDB's schema is 0007's
    op.drop_column("developers", "version")
