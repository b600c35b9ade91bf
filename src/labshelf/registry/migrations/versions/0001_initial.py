"""The first schema: runs, datasets, broadcasts and the change feed.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# A migration is a frozen copy of the schema at its time, never an import of
# schema.py (which moves on).
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "shelf_info",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("experiment", sa.String(255), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started", sa.Float, nullable=False),
        sa.Column("ended", sa.Float),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_runs_experiment", "runs", ["experiment"])
    op.create_index("ix_runs_started", "runs", ["started"])
    op.create_table(
        "datasets",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "run",
            sa.Integer,
            sa.ForeignKey("runs.number", ondelete="CASCADE", name="fk_datasets_run_runs"),
            nullable=False,
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("data_id", sa.Text, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("shape", sa.Text),
        sa.Column("dtype", sa.String(64)),
        sa.Column("nbytes", sa.BigInteger, nullable=False),
        sa.Column("summary_kind", sa.String(16), nullable=False),
        sa.Column("summary_value", sa.Float),
        sa.Column("summary_text", sa.Text),
        sa.Column("thumbnail", sa.LargeBinary),
        sa.Column("inline", sa.Text),
        sa.Column("location", sa.Text),
        sa.Column("options", sa.Text),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
        sa.UniqueConstraint("run", "name", "data_id", name="uq_datasets_run_name_data_id"),
    )
    op.create_index("ix_datasets_name", "datasets", ["name"])
    op.create_table(
        "broadcasts",
        sa.Column(
            "run",
            sa.Integer,
            sa.ForeignKey("runs.number", ondelete="CASCADE", name="fk_broadcasts_run_runs"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("data_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("inline", sa.Text),
        sa.Column("updated", sa.Float, nullable=False),
    )
    op.create_table(
        "changes",
        sa.Column("seq", _BigId, primary_key=True, autoincrement=True),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("run", sa.Integer),
        sa.Column("name", sa.String(255)),
        sa.Column("data_id", sa.Text),
        sa.Column("version", sa.Integer),
        sa.Column("payload", sa.Text),
    )


def downgrade() -> None:
    for table in ("changes", "broadcasts", "datasets", "runs", "shelf_info"):
        op.drop_table(table)
