"""Alertmanager silences: the labels a silence of an alert group matches, and the id of the
silence Alertmanager holds for the incident.

Revision ID: 0007_silences
Revises: 0006_policy (and needs 0003_incidents)
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_silences"
down_revision = "0006_policy"
branch_labels = None
depends_on = "0003_incidents"  # the incidents table is made on another branch of the schema


def upgrade() -> None:
    with op.batch_alter_table("incidents") as table:
        table.add_column(sa.Column("silence_labels", sa.JSON, nullable=True))
        table.add_column(sa.Column("silence_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as table:
        table.drop_column("silence_id")
        table.drop_column("silence_labels")
