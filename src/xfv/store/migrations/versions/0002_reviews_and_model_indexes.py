"""Reviews join the store; indexes for the pair table over every dataset.

- ``reviews``: verdicts on a model's decision for a pair, from the web platform's review queue.
  The web platform used to create its own ``web_reviews`` table outside the migrations; a store
  that has one gets its reviews copied over (in their order) and the old table dropped.
- ``pair_results (model_id, distance | cscore)``: sorting every dataset's results of one model by
  distance or C-Score walks an index instead of sorting them all.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The reviews table the web platform created itself before this revision.
LEGACY_REVIEWS = "web_reviews"


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pair_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("reviewer", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("verdict IN ('agree', 'disagree')", name=op.f("ck_reviews_verdict")),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_reviews_model_id_models"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["pair_id"], ["pairs.id"], name=op.f("fk_reviews_pair_id_pairs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index("ix_reviews_model_pair", "reviews", ["model_id", "pair_id"], unique=False)
    op.create_index("ix_pair_results_model_distance", "pair_results", ["model_id", "distance"], unique=False)
    op.create_index("ix_pair_results_model_cscore", "pair_results", ["model_id", "cscore"], unique=False)
    if LEGACY_REVIEWS in sa.inspect(op.get_bind()).get_table_names():
        columns = "pair_id, model_id, verdict, comment, reviewer, created_at"
        op.execute(f"INSERT INTO reviews ({columns}) SELECT {columns} FROM {LEGACY_REVIEWS} ORDER BY id")
        op.drop_table(LEGACY_REVIEWS)


def downgrade() -> None:
    """Downgrade schema (reviews are dropped)."""
    op.drop_index("ix_pair_results_model_cscore", table_name="pair_results")
    op.drop_index("ix_pair_results_model_distance", table_name="pair_results")
    op.drop_index("ix_reviews_model_pair", table_name="reviews")
    op.drop_table("reviews")
