"""The change stamp: one counter raised by every write to a rollout's status or the freeze.

Revision ID: 0008_change_stamp
Revises: 0007_shadow
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_change_stamp"
down_revision = "0007_shadow"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "change_stamp",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("stamp", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.bulk_insert(table, [{"id": 1, "stamp": 0}])


def downgrade() -> None:
    op.drop_table("change_stamp")
