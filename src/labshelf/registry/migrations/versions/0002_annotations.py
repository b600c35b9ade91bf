"""Annotations (comments, tags, user columns, history), derived-variable bookkeeping, a covering name index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _run_fk(table: str, *, primary_key: bool) -> sa.Column:
    return sa.Column(
        "run",
        sa.Integer,
        sa.ForeignKey("runs.number", ondelete="CASCADE", name=f"fk_{table}_run_runs"),
        primary_key=primary_key,
        nullable=False,
    )


def upgrade() -> None:
    # The run table asks "which summary kinds does this column hold?"; with
    # the kind in the index that is an index-only scan.
    op.drop_index("ix_datasets_name", table_name="datasets")
    op.create_index("ix_datasets_name_kind", "datasets", ["name", "data_id", "summary_kind"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("comment", sa.Text))
    op.create_table(
        "run_tags",
        _run_fk("run_tags", primary_key=True),
        sa.Column("tag", sa.String(255), primary_key=True),
    )
    op.create_index("ix_run_tags_tag", "run_tags", ["tag"])
    op.create_table(
        "user_columns",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_table(
        "user_values",
        _run_fk("user_values", primary_key=True),
        sa.Column(
            "column",
            sa.String(255),
            sa.ForeignKey("user_columns.name", ondelete="CASCADE", name="fk_user_values_column_user_columns"),
            primary_key=True,
        ),
        sa.Column("value_num", sa.Float),
        sa.Column("value_text", sa.Text),
    )
    op.create_table(
        "history",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        _run_fk("history", primary_key=False),
        sa.Column("field", sa.String(255), nullable=False),
        sa.Column("old", sa.Text),
        sa.Column("new", sa.Text),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("time", sa.Float, nullable=False),
    )
    op.create_index("ix_history_run", "history", ["run"])
    op.create_table(
        "derived",
        _run_fk("derived", primary_key=True),
        sa.Column("variable", sa.String(255), primary_key=True),
        sa.Column("source_hash", sa.String(64), nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("updated", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("derived", "history", "user_values", "user_columns", "run_tags"):
        op.drop_table(table)
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("comment")
    op.drop_index("ix_datasets_name_kind", table_name="datasets")
    op.create_index("ix_datasets_name", "datasets", ["name"])
