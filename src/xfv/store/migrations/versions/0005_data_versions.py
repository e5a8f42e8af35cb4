"""A version counter of the pair table's data, raised by triggers.

``data_versions`` holds one row, ``pair_table``, whose ``version`` goes up with every insert,
update or delete on the tables the web's in-memory pair table is read from (datasets, identities,
images, pairs, models, pair_results). The store's change token moves with any write at all (a
running X-Map job writes its progress twice a second); the counter tells the web whether the
table it keeps is still the store's, at the cost of one tiny query.
SQLite triggers are per row (SQLite has no statement triggers); PostgreSQL's per statement.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The tables whose writes raise the ``pair_table`` version.
PAIR_TABLE_SOURCES = ("datasets", "identities", "images", "pairs", "models", "pair_results")
BUMP = "UPDATE data_versions SET version = version + 1 WHERE name = 'pair_table'"
EVENTS = ("insert", "update", "delete")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "data_versions",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_data_versions")),
    )
    op.execute("INSERT INTO data_versions (name, version) VALUES ('pair_table', 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION xfv_bump_pair_table() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in PAIR_TABLE_SOURCES:
            op.execute(
                f"CREATE TRIGGER {table}_bump_pair_table AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION xfv_bump_pair_table()"
            )
        return
    for table in PAIR_TABLE_SOURCES:
        for event in EVENTS:
            op.execute(
                f"CREATE TRIGGER {table}_{event}_bump_pair_table AFTER {event.upper()} ON {table} BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    """Downgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        for table in PAIR_TABLE_SOURCES:
            op.execute(f"DROP TRIGGER {table}_bump_pair_table ON {table}")
        op.execute("DROP FUNCTION xfv_bump_pair_table()")
    else:
        for table in PAIR_TABLE_SOURCES:
            for event in EVENTS:
                op.execute(f"DROP TRIGGER {table}_{event}_bump_pair_table")
    op.drop_table("data_versions")
