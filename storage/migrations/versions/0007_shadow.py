"""Shadow runs: the percentage a rollout keeps delivering while a shadow run decides.

Revision ID: 0007_shadow
Revises: 0006_policy
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_shadow"
down_revision = "0006_policy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rollouts") as table:
        table.add_column(sa.Column("shadow_percent", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollouts") as table:
        table.drop_column("shadow_percent")
