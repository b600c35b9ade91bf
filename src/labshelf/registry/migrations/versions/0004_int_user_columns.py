"""Integer user columns: ``user_values.value_int`` keeps int64 annotations exactly.

Until 0003 every number of a user column was a float, so ``2**53 + 1`` came
back rounded.  Columns made before keep their type ("number", float64) and
their values untouched; columns first given an int are "int" from now on.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column: SQLite adds it with ALTER TABLE, without copying the table.
    op.add_column("user_values", sa.Column("value_int", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("user_values") as batch:
        batch.drop_column("value_int")
