"""developers table with its keyset and case-insensitive email indexes

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # PostgreSQL's revision: MariaDB's schema is 0007's
    op.create_table(
        "developers",
        sa.Column("id", sa.BigInteger(), sa.Identity(start=1, increment=1), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("specialty", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_developers"),
        sa.CheckConstraint("char_length(name) BETWEEN 1 AND 200", name="ck_developers_name_length"),
        sa.CheckConstraint("char_length(specialty) BETWEEN 1 AND 100", name="ck_developers_specialty_length"),
        sa.CheckConstraint("char_length(email) BETWEEN 3 AND 254", name="ck_developers_email_length"),
    )
    op.create_index("uq_developers_email_lower", "developers", [sa.text("lower(email)")], unique=True)
    op.create_index("ix_developers_specialty_name_id", "developers", ["specialty", "name", "id"])
    op.create_index("ix_developers_name_id", "developers", ["name", "id"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # PostgreSQL's revision: MariaDB's schema is 0007's
    op.drop_table("developers")
