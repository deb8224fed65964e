"""Baseline: the schema of the databases deployed before migrations existed (release 0.1.0).

Written out here as it was, never imported from :mod:`reconciler.store.schema`, which moves
on. Revision ID: 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

ID = 253
SHA = 64
DIGEST = 80


def upgrade() -> None:
    op.create_table(
        "revisions",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sha", sa.String(SHA), nullable=False, unique=True),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("errors", sa.JSON, nullable=False),
        sa.Column("recorded_at", sa.Float, nullable=False),
        sa.Column("reconcile_seconds", sa.Float),
    )
    op.create_table(
        "documents",
        sa.Column("digest", sa.String(DIGEST), primary_key=True),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("stored_at", sa.Float, nullable=False),
    )
    op.create_table(
        "assignments",
        sa.Column("appliance", sa.String(ID), primary_key=True),
        sa.Column("site", sa.String(ID), nullable=False),
        sa.Column("declared", sa.Boolean, nullable=False),
        sa.Column("served_digest", sa.String(DIGEST), sa.ForeignKey("documents.digest")),
        sa.Column("served_revision", sa.String(SHA)),
        sa.Column("served_at", sa.Float),
        sa.Column("target_digest", sa.String(DIGEST), sa.ForeignKey("documents.digest")),
        sa.Column("target_revision", sa.String(SHA)),
    )
    op.create_table(
        "rollouts",
        sa.Column("revision", sa.String(SHA), sa.ForeignKey("revisions.sha"), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("wave", sa.Integer, nullable=False),
        sa.Column("waves", sa.JSON, nullable=False),
        sa.Column("max_failures", sa.String(8), nullable=False),
        sa.Column("soak_seconds", sa.Float, nullable=False),
        sa.Column("failing", sa.JSON, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
    )
    op.create_index("rollouts_by_state", "rollouts", ["state", "seq"])
    op.create_table(
        "rollout_sites",
        sa.Column("revision", sa.String(SHA), sa.ForeignKey("rollouts.revision"), primary_key=True),
        sa.Column("site", sa.String(ID), primary_key=True),
        sa.Column("wave", sa.Integer, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("windows", sa.JSON, nullable=False),
        sa.Column("changed", sa.Boolean, nullable=False),
        sa.Column("revert", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("waiting", sa.Text, nullable=False),
        sa.Column("admitted_at", sa.Float),
        sa.Column("healthy_since", sa.Float),
        sa.Column("failed_at", sa.Float),
        sa.Column("failure", sa.Text),
        sa.Column("done_at", sa.Float),
    )
    op.create_table(
        "rollout_targets",
        sa.Column("revision", sa.String(SHA), sa.ForeignKey("rollouts.revision"), primary_key=True),
        sa.Column("appliance", sa.String(ID), primary_key=True),
        sa.Column("site", sa.String(ID), nullable=False),
        sa.Column("digest", sa.String(DIGEST), sa.ForeignKey("documents.digest")),
        sa.Column("changed", sa.Boolean, nullable=False),
        sa.Column("disruptive", sa.Boolean, nullable=False),
        sa.Column("clusters", sa.JSON, nullable=False),
        sa.Column("shared", sa.JSON, nullable=False),
        sa.Column("control_plane", sa.Boolean, nullable=False),
        sa.Column("waiting", sa.Text, nullable=False),
        sa.Column("released_at", sa.Float),
    )
    op.create_index("rollout_targets_by_site", "rollout_targets", ["revision", "site"])
    op.create_table(
        "healthy_digests",
        sa.Column("appliance", sa.String(ID), primary_key=True),
        sa.Column("digest", sa.String(DIGEST), primary_key=True),
        sa.Column("first_healthy_at", sa.Float, nullable=False),
    )
    op.create_table(
        "agents",
        sa.Column("appliance", sa.String(ID), primary_key=True),
        sa.Column("hostname", sa.String(ID), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("arch", sa.String(16), nullable=False),
        sa.Column("agent_version", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("registered_at", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
    )
    op.create_table(
        "reports",
        sa.Column("appliance", sa.String(ID), primary_key=True),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("applied_digest", sa.String(DIGEST)),
        sa.Column("healthy", sa.Boolean, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("site", sa.String(ID)),
        sa.Column("appliance", sa.String(ID)),
        sa.Column("revision", sa.String(SHA)),
        sa.Column("key", sa.String(128)),
        sa.UniqueConstraint("appliance", "key", name="events_once_per_key"),
    )
    op.create_index("events_by_site", "events", ["site", "id"])


def downgrade() -> None:
    # going back is restoring the backup taken before the upgrade (docs/operations.md)
    raise NotImplementedError("restore the store's backup from before the upgrade")
