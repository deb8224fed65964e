"""Clusters spanning appliances: each cluster's join secret and whether it formed
(``cluster_joins``), leases that let one appliance of a cluster at a time take its nodes down
(``leases``), and decommissioned appliances (``assignments.decommissioned_at``). Revision ID:
0007."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None

ID = 253


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "cluster_joins" not in tables:
        op.create_table(
            "cluster_joins",
            sa.Column("site", sa.String(ID), primary_key=True),
            sa.Column("cluster", sa.String(ID), primary_key=True),
            sa.Column("secret", sa.String(128), nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("formed_at", sa.Float),
            sa.Column("retired_at", sa.Float),
        )
    if "leases" not in tables:
        op.create_table(
            "leases",
            sa.Column("site", sa.String(ID), primary_key=True),
            sa.Column("cluster", sa.String(ID), primary_key=True),
            sa.Column("holder", sa.String(ID), nullable=False),
            sa.Column("purpose", sa.String(16), nullable=False),
            sa.Column("granted_at", sa.Float, nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
        )
    columns = {c["name"] for c in inspector.get_columns("assignments")}
    if "decommissioned_at" not in columns:
        op.add_column("assignments", sa.Column("decommissioned_at", sa.Float))


def downgrade() -> None:
    # going back is restoring the backup taken before the upgrade (docs/operations.md)
    raise NotImplementedError("restore the store's backup from before the upgrade")
