"""Gate states: per rollout and gate, the current outcome, since when, and the last value.

Revision ID: 0002_gates
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_gates"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gate_states",
        sa.Column("rollout", sa.String(64), primary_key=True),
        sa.Column("gate", sa.String(64), primary_key=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("since", sa.DateTime, nullable=False),
        sa.Column("measured_at", sa.DateTime, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("threshold", sa.Float),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("escalated", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gate_states")
