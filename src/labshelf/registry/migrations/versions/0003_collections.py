"""Collections: TAGGED and CHAINED collections, documentation and stages of collections.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _collection_fk(table: str, column: str) -> sa.Column:
    return sa.Column(
        column,
        sa.String(255),
        sa.ForeignKey("collections.name", ondelete="CASCADE", name=f"fk_{table}_{column}_collections"),
        primary_key=True,
    )


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("doc", sa.Text),
        sa.Column("stage", sa.String(64)),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_table(
        "collection_chains",
        _collection_fk("collection_chains", "chain"),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("child", sa.String(255), nullable=False),
    )
    op.create_table(
        "collection_members",
        _collection_fk("collection_members", "collection"),
        sa.Column(
            "dataset",
            _BigId,
            sa.ForeignKey("datasets.id", ondelete="CASCADE", name="fk_collection_members_dataset_datasets"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("data_id", sa.Text, nullable=False),
        sa.UniqueConstraint("collection", "name", "data_id", name="uq_collection_members_collection_name_data_id"),
    )
    op.create_index("ix_collection_members_dataset", "collection_members", ["dataset"])


def downgrade() -> None:
    for table in ("collection_members", "collection_chains", "collections"):
        op.drop_table(table)
