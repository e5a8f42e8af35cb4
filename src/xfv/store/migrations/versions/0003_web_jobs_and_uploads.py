"""The web server's background jobs and uploaded pairs move into the store.

- ``web_jobs``: X-Map jobs of pairs and uploads with their progress, so every server process
  (``xfv serve --workers N``) answers any job's progress; ``active_key`` (unique) keeps the same
  work one job at a time.
- ``web_uploads``: uploaded pairs (verification, photos, aligned faces, X-Maps once computed).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "web_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("active_key", sa.String(length=300), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result_url", sa.String(length=300), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_jobs")),
        sa.UniqueConstraint("active_key", name=op.f("uq_web_jobs_active_key")),
    )
    op.create_index(op.f("ix_web_jobs_created_at"), "web_jobs", ["created_at"], unique=False)
    op.create_table(
        "web_uploads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("photos", sa.LargeBinary(), nullable=False),
        sa.Column("maps", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_uploads")),
    )
    op.create_index(op.f("ix_web_uploads_created_at"), "web_uploads", ["created_at"], unique=False)


def downgrade() -> None:
    """Downgrade schema (jobs and uploads are dropped)."""
    op.drop_index(op.f("ix_web_uploads_created_at"), table_name="web_uploads")
    op.drop_table("web_uploads")
    op.drop_index(op.f("ix_web_jobs_created_at"), table_name="web_jobs")
    op.drop_table("web_jobs")
