"""Who runs a claimed timer: the replica's id, set by its claim, cleared when it fails.

Revision ID: 0008_claims
Revises: 0007_silences
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_claims"
down_revision = "0007_silences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("timers") as table:
        table.add_column(sa.Column("claimed_by", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("timers") as table:
        table.drop_column("claimed_by")
