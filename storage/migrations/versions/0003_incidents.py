"""Incidents (chain snapshot and escalation cursor), their log, Alertmanager notifications.

Revision ID: 0003_incidents
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_incidents"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_key", sa.String(200), nullable=False, index=True),
        sa.Column("live_key", sa.String(200), unique=True),
        sa.Column("rollout", sa.String(64)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("chain", sa.JSON, nullable=False),
        sa.Column("alerts", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("next_due", sa.DateTime),
        sa.Column("token", sa.Integer, nullable=False),
        sa.Column("exhausted", sa.Boolean, nullable=False),
        sa.Column("acked_by", sa.String(64)),
        sa.Column("acked_at", sa.DateTime),
        sa.Column("resolved_by", sa.String(64)),
        sa.Column("resolved_at", sa.DateTime),
        sa.Column("silenced_until", sa.DateTime),
        sa.Column("opened_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("message_channel", sa.String(32)),
        sa.Column("message_ts", sa.String(32)),
        sa.Column("thread_ts", sa.String(32)),
    )
    op.create_table(
        "incident_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer, nullable=False, index=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("verb", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("level", sa.Integer),
        sa.Column("round", sa.Integer),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "alert_notifications",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False, index=True),
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("incident_id", sa.Integer),
    )


def downgrade() -> None:
    for table in ("alert_notifications", "incident_log", "incidents"):
        op.drop_table(table)
