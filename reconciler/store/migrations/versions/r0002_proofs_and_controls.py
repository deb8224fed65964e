"""Proven-healthy rollouts and operators' controls: ``rollouts.accepted``,
``rollout_targets.revert``, and the tables ``streaks`` and ``controls``. Revision ID: 0002.

Each step adds only what is missing, so a database that an unreleased build between the
baseline and this revision created (it has some of these already) upgrades too. Existing
rows get: no accepted failures; ``revert`` where the target changed the appliance's state to
a digest it had once run healthy (what the rollout decides for new releases); no streaks, so
every appliance proves its current state anew with its next healthy reports, and the first
rollout after the upgrade waits one soak for that proof.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

ID = 253
DIGEST = 80


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "accepted" not in _columns(inspector, "rollouts"):
        op.add_column(
            "rollouts", sa.Column("accepted", sa.JSON, nullable=False, server_default="[]")
        )
    if "revert" not in _columns(inspector, "rollout_targets"):
        op.add_column(
            "rollout_targets",
            sa.Column("revert", sa.Boolean, nullable=False, server_default=sa.false()),
        )
        _mark_reverts()
    if "streaks" not in tables:
        op.create_table(
            "streaks",
            sa.Column("appliance", sa.String(ID), primary_key=True),
            sa.Column("digest", sa.String(DIGEST), nullable=False),
            sa.Column("since", sa.Float),
            sa.Column("proven_at", sa.Float),
        )
    if "controls" not in tables:
        op.create_table(
            "controls",
            sa.Column("name", sa.String(32), primary_key=True),
            sa.Column("value", sa.JSON, nullable=False),
            sa.Column("set_by", sa.String(ID), nullable=False),
            sa.Column("set_at", sa.Float, nullable=False),
        )


def _columns(inspector: sa.Inspector, table: str) -> set[str]:
    return {column["name"] for column in inspector.get_columns(table)}


def _mark_reverts() -> None:
    targets = sa.table(
        "rollout_targets",
        sa.column("appliance", sa.String),
        sa.column("digest", sa.String),
        sa.column("changed", sa.Boolean),
        sa.column("revert", sa.Boolean),
    )
    healthy = sa.table("healthy_digests", sa.column("appliance"), sa.column("digest"))
    ran_before = (
        sa.select(sa.literal(1))
        .where(healthy.c.appliance == targets.c.appliance, healthy.c.digest == targets.c.digest)
        .exists()
    )
    op.execute(
        targets.update()
        .where(targets.c.changed == sa.true(), targets.c.digest.is_not(None), ran_before)
        .values(revert=True)
    )


def downgrade() -> None:
    # going back is restoring the backup taken before the upgrade (docs/operations.md)
    raise NotImplementedError("restore the store's backup from before the upgrade")
