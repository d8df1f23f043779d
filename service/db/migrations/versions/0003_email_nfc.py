"""emails in Unicode NFC: existing ones normalised, and a CHECK that holds every write path to it

Names and specialties are normalised too (without a CHECK): the API stores them in NFC from now on, and a
listing by specialty compares the NFC form.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("developers", "users")
# Emails that are distinct today but the same once normalised: the unique index would refuse the UPDATE below.
_CLASHES = """
    SELECT lower(normalize(email, NFC)) AS email, array_agg(id ORDER BY id) AS ids
    FROM {table} GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 10"""

_NORMALIZE = "UPDATE {table} SET email = normalize(email, NFC) WHERE email IS NOT NFC NORMALIZED"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # PostgreSQL's revision: MariaDB's schema is 0007's
    bind = op.get_bind()
    for table in TABLES:
        clashes = bind.execute(sa.text(_CLASHES.format(table=table))).all()
        if clashes:
            listed = "; ".join(f"{email} (ids {', '.join(map(str, ids))})" for email, ids in clashes)
            raise RuntimeError(
                f"{table}: these rows hold one email in different Unicode forms; keep one of each and migrate "
                f"again: {listed}"
            )
        op.execute(_NORMALIZE.format(table=table))
        op.create_check_constraint(f"ck_{table}_email_nfc", table, "email IS NFC NORMALIZED")
    op.execute(
        "UPDATE developers SET name = normalize(name, NFC), specialty = normalize(specialty, NFC) "
        "WHERE name IS NOT NFC NORMALIZED OR specialty IS NOT NFC NORMALIZED"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # PostgreSQL's revision: MariaDB's schema is 0007's
    # The normalised text stays: it is the same text.
    for table in TABLES:
        op.drop_constraint(f"ck_{table}_email_nfc", table, type_="check")
