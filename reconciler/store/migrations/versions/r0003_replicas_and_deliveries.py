"""Replicas and deliveries: the change log every replica follows (``changes``), whether an
appliance's latest report shows a cluster in use (``reports.in_use``, read by the metrics'
aggregates), and the record of commit statuses and webhooks sent (``deliveries``).
Revision ID: 0003.

Existing reports count as not in use until each appliance reports again (within its next
heartbeat); the change log starts empty.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

ID = 253
DIGEST = 80
SHA = 64


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "in_use" not in {c["name"] for c in inspector.get_columns("reports")}:
        op.add_column(
            "reports",
            sa.Column("in_use", sa.Boolean, nullable=False, server_default=sa.false()),
        )
    if "changes" not in tables:
        op.create_table(
            "changes",
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("kind", sa.String(8), nullable=False),
            sa.Column("appliance", sa.String(ID), nullable=False),
            sa.Column("digest", sa.String(DIGEST)),
            sa.Column("revision", sa.String(SHA)),
            sa.Column("at", sa.Float, nullable=False),
        )
    if "deliveries" not in tables:
        op.create_table(
            "deliveries",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("destination", sa.String(255), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("event", sa.String(32), nullable=False),
            sa.Column("revision", sa.String(SHA)),
            sa.Column("state", sa.String(12), nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("detail", sa.Text, nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
        )


def downgrade() -> None:
    # going back is restoring the backup taken before the upgrade (docs/operations.md)
    raise NotImplementedError("restore the store's backup from before the upgrade")
