"""Initial schema: datasets, identities, images, pairs, models, results, X-Maps, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("protocol", sa.String(length=20), nullable=False),
        sa.Column("root", sa.Text(), nullable=False),
        sa.Column("input_mode", sa.String(length=20), nullable=False),
        sa.Column("image_count", sa.Integer(), nullable=False),
        sa.Column("pair_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("name", name=op.f("uq_datasets_name")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("weights_hash", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", name=op.f("uq_models_name")),
    )
    op.create_table(
        "occlusion_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_occlusion_settings")),
        sa.UniqueConstraint("key", name=op.f("uq_occlusion_settings_key")),
    )
    op.create_table(
        "fold_results",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("fold", sa.Integer(), nullable=False),
        sa.Column("n_pairs", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=False),
        sa.Column("cscore_L", sa.Float(), nullable=False),
        sa.Column("cscore_d0", sa.Float(), nullable=False),
        sa.Column("cscore_k", sa.Float(), nullable=False),
        sa.Column("cscore_b", sa.Float(), nullable=False),
        sa.Column("calibration", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_fold_results_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_fold_results_model_id_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("dataset_id", "model_id", "fold", name=op.f("pk_fold_results")),
    )
    op.create_table(
        "identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_identities_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint("dataset_id", "name", name=op.f("uq_identities_dataset_id_name")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total_items", sa.Integer(), nullable=False),
        sa.Column("done_items", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_jobs_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_jobs_model_id_models"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("key", name=op.f("uq_jobs_key")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_dataset_id"), ["dataset_id"], unique=False)

    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("file_size", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("quality", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_images_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["identity_id"], ["identities.id"], name=op.f("fk_images_identity_id_identities"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("dataset_id", "path", name=op.f("uq_images_dataset_id_path")),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_content_hash"), ["content_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_identity_id"), ["identity_id"], unique=False)

    op.create_table(
        "job_chunks",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("pair_ids", sa.JSON(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_chunks_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "position", name=op.f("pk_job_chunks")),
    )
    op.create_table(
        "pairs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("fold", sa.Integer(), nullable=False),
        sa.Column("same", sa.Boolean(), nullable=False),
        sa.Column("image1_id", sa.Integer(), nullable=False),
        sa.Column("image2_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_pairs_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["image1_id"], ["images.id"], name=op.f("fk_pairs_image1_id_images"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["image2_id"], ["images.id"], name=op.f("fk_pairs_image2_id_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pairs")),
        sa.UniqueConstraint("dataset_id", "position", name=op.f("uq_pairs_dataset_id_position")),
    )
    with op.batch_alter_table("pairs", schema=None) as batch_op:
        batch_op.create_index("ix_pairs_dataset_fold", ["dataset_id", "fold"], unique=False)
        batch_op.create_index("ix_pairs_dataset_same", ["dataset_id", "same"], unique=False)
        batch_op.create_index(batch_op.f("ix_pairs_image1_id"), ["image1_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pairs_image2_id"), ["image2_id"], unique=False)

    op.create_table(
        "pair_results",
        sa.Column("pair_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("distance", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("predicted_same", sa.Boolean(), nullable=True),
        sa.Column("correct", sa.Boolean(), nullable=True),
        sa.Column("cscore", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_pair_results_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_pair_results_model_id_models"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["pair_id"], ["pairs.id"], name=op.f("fk_pair_results_pair_id_pairs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pair_id", "model_id", name=op.f("pk_pair_results")),
    )
    with op.batch_alter_table("pair_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pair_results_dataset_model_correct", ["dataset_id", "model_id", "correct"], unique=False
        )
        batch_op.create_index(
            "ix_pair_results_dataset_model_cscore", ["dataset_id", "model_id", "cscore"], unique=False
        )
        batch_op.create_index(
            "ix_pair_results_dataset_model_distance", ["dataset_id", "model_id", "distance"], unique=False
        )

    op.create_table(
        "xmap_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pair_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("setting_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.Integer(), nullable=False),
        sa.Column("distance", sa.Float(), nullable=False),
        sa.Column("forward_passes", sa.Integer(), nullable=False),
        sa.Column("maps", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_xmap_results_model_id_models"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["pair_id"], ["pairs.id"], name=op.f("fk_xmap_results_pair_id_pairs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["setting_id"],
            ["occlusion_settings.id"],
            name=op.f("fk_xmap_results_setting_id_occlusion_settings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xmap_results")),
        sa.UniqueConstraint(
            "pair_id",
            "model_id",
            "setting_id",
            "method",
            name=op.f("uq_xmap_results_pair_id_model_id_setting_id_method"),
        ),
    )
    with op.batch_alter_table("xmap_results", schema=None) as batch_op:
        batch_op.create_index("ix_xmap_results_model_pair", ["model_id", "pair_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("xmap_results", schema=None) as batch_op:
        batch_op.drop_index("ix_xmap_results_model_pair")

    op.drop_table("xmap_results")
    with op.batch_alter_table("pair_results", schema=None) as batch_op:
        batch_op.drop_index("ix_pair_results_dataset_model_distance")
        batch_op.drop_index("ix_pair_results_dataset_model_cscore")
        batch_op.drop_index("ix_pair_results_dataset_model_correct")

    op.drop_table("pair_results")
    with op.batch_alter_table("pairs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pairs_image2_id"))
        batch_op.drop_index(batch_op.f("ix_pairs_image1_id"))
        batch_op.drop_index("ix_pairs_dataset_same")
        batch_op.drop_index("ix_pairs_dataset_fold")

    op.drop_table("pairs")
    op.drop_table("job_chunks")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_identity_id"))
        batch_op.drop_index(batch_op.f("ix_images_content_hash"))

    op.drop_table("images")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_dataset_id"))

    op.drop_table("jobs")
    op.drop_table("identities")
    op.drop_table("fold_results")
    op.drop_table("occlusion_settings")
    op.drop_table("models")
    op.drop_table("datasets")
