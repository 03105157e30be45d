"""Where an alert came from (its generatorURL or Alertmanager's address), kept apart from
the text Alertmanager sent, so that only the bot draws a link and only to a checked address.

Revision ID: 0007_incident_source_url
Revises: 0006_policy
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_incident_source_url"
down_revision = "0006_policy"
branch_labels = None
depends_on = ("0003_incidents",)  # the table it alters


def upgrade() -> None:
    with op.batch_alter_table("incidents") as table:
        table.add_column(sa.Column("source_url", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as table:
        table.drop_column("source_url")
