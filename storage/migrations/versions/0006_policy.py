"""The safety policy: a step waiting for a second person, an automatic advance waiting on a
freeze, the emergency freeze, and the policy and gate values each audit event was made under.

Revision ID: 0006_policy
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_policy"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rollouts") as table:
        table.add_column(sa.Column("pending", sa.JSON, nullable=True))
        table.add_column(sa.Column("waiting", sa.JSON, nullable=True))
    with op.batch_alter_table("events") as table:
        table.add_column(sa.Column("gates", sa.JSON, nullable=True))
        table.add_column(sa.Column("policy", sa.JSON, nullable=True))
    op.create_table(
        "freezes",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("by_user", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("freezes")
    with op.batch_alter_table("events") as table:
        table.drop_column("policy")
        table.drop_column("gates")
    with op.batch_alter_table("rollouts") as table:
        table.drop_column("waiting")
        table.drop_column("pending")
