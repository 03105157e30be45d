"""Rollouts, the audit log, the outbox, timers and processed Slack requests.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("percent", sa.Integer, nullable=False),
        sa.Column("stage_index", sa.Integer),
        sa.Column("stage_started_at", sa.DateTime),
        sa.Column("hold_reason", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("thread_channel", sa.String(32)),
        sa.Column("thread_ts", sa.String(32)),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rollout", sa.String(64), nullable=False, index=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("verb", sa.String(16), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=False),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("from_percent", sa.Integer, nullable=False),
        sa.Column("to_percent", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(64), nullable=False, index=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("rollout", sa.String(64)),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("lease_until", sa.DateTime),
        sa.Column("delivered_at", sa.DateTime, index=True),
        sa.Column("failed_at", sa.DateTime),
        sa.Column("last_error", sa.Text, nullable=False),
    )
    op.create_table(
        "timers",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("due_at", sa.DateTime, nullable=False, index=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("lease_until", sa.DateTime),
        sa.Column("token", sa.Integer, nullable=False),
    )
    op.create_table(
        "processed_requests",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False, index=True),
        sa.Column("reply", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("processed_requests", "timers", "outbox", "events", "rollouts"):
        op.drop_table(table)
