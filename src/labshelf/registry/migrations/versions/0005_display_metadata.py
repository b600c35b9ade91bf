"""Display metadata (unit, scale, precision, title, description), column tags, the logbook.

``history.run`` becomes nullable: changes of the shelf as a whole (metadata,
column tags, log entries) are kept in the same history without a run.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # SQLite cannot drop NOT NULL in place: batch mode copies the table (history only).
    with op.batch_alter_table("history") as batch:
        batch.alter_column("run", existing_type=sa.Integer, nullable=True)
    op.create_table(
        "dataset_meta",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("data_id", sa.Text, primary_key=True),
        sa.Column("unit", sa.String(64)),
        sa.Column("scale", sa.Float),
        sa.Column("precision", sa.Integer),
        sa.Column("title", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("updated", sa.Float, nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
    )
    op.create_table(
        "column_tags",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("tag", sa.String(255), primary_key=True),
    )
    op.create_index("ix_column_tags_tag", "column_tags", ["tag"])
    op.create_table(
        "logbook",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
    )
    op.create_index("ix_logbook_time", "logbook", ["time"])


def downgrade() -> None:
    op.drop_table("logbook")
    op.drop_table("column_tags")
    op.drop_table("dataset_meta")
    op.execute("DELETE FROM history WHERE run IS NULL")
    with op.batch_alter_table("history") as batch:
        batch.alter_column("run", existing_type=sa.Integer, nullable=False)
