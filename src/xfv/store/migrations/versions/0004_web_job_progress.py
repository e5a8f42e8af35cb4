"""Web jobs report what they have done so far: ``info`` (e.g. the patch sizes of progressive
X-Maps done) and ``partial`` (the coarse maps of those levels, so any server process shows them).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("web_jobs") as batch:
        batch.add_column(sa.Column("info", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("partial", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("web_jobs") as batch:
        batch.drop_column("partial")
        batch.drop_column("info")
