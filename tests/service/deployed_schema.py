"""The store's schema as release 0.1.0 deployed it: ``reconciler/store/schema.py`` at commit
0c49475, kept as it was so the migration tests can make databases as deployed ones are
(``create_all``, no ``alembic_version``)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

ID = 253  # appliance and site IDs; names are at most 63, IDs are checked by the API
SHA = 64
DIGEST = 80

revisions = Table(
    "revisions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("sha", String(SHA), nullable=False, unique=True),
    Column("outcome", String(8), nullable=False),  # good | failed
    Column("errors", JSON, nullable=False),
    Column("recorded_at", Float, nullable=False),
    Column("reconcile_seconds", Float),
)

documents = Table(
    "documents",
    metadata,
    Column("digest", String(DIGEST), primary_key=True),
    Column("content", Text, nullable=False),  # canonical JSON of DesiredState.content()
    Column("stored_at", Float, nullable=False),
)

assignments = Table(
    "assignments",
    metadata,
    Column("appliance", String(ID), primary_key=True),
    Column("site", String(ID), nullable=False),
    Column("declared", Boolean, nullable=False),
    Column("served_digest", String(DIGEST), ForeignKey("documents.digest")),
    Column("served_revision", String(SHA)),
    Column("served_at", Float),
    Column("target_digest", String(DIGEST), ForeignKey("documents.digest")),
    Column("target_revision", String(SHA)),
)

rollouts = Table(
    "rollouts",
    metadata,
    Column("revision", String(SHA), ForeignKey("revisions.sha"), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # running | halted | done | superseded
    Column("wave", Integer, nullable=False),
    Column("waves", JSON, nullable=False),  # [{"name", "labels"}]
    Column("max_failures", String(8), nullable=False),
    Column("soak_seconds", Float, nullable=False),
    Column("failing", JSON, nullable=False),  # site names
    Column("started_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float),
)
Index("rollouts_by_state", rollouts.c.state, rollouts.c.seq)

rollout_sites = Table(
    "rollout_sites",
    metadata,
    Column("revision", String(SHA), ForeignKey("rollouts.revision"), primary_key=True),
    Column("site", String(ID), primary_key=True),
    Column("wave", Integer, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("windows", JSON, nullable=False),  # [{"days", "start", "duration"}]
    Column("changed", Boolean, nullable=False),
    Column("revert", Boolean, nullable=False),
    Column("state", String(16), nullable=False),  # see rollout.progress.SiteState
    Column("waiting", Text, nullable=False),  # why it is held, for operators
    Column("admitted_at", Float),
    Column("healthy_since", Float),
    Column("failed_at", Float),
    Column("failure", Text),
    Column("done_at", Float),
)

rollout_targets = Table(
    "rollout_targets",
    metadata,
    Column("revision", String(SHA), ForeignKey("rollouts.revision"), primary_key=True),
    Column("appliance", String(ID), primary_key=True),
    Column("site", String(ID), nullable=False),
    Column("digest", String(DIGEST), ForeignKey("documents.digest")),  # NULL: no state
    Column("changed", Boolean, nullable=False),
    Column("disruptive", Boolean, nullable=False),
    Column("clusters", JSON, nullable=False),  # cluster names on this appliance
    Column("shared", JSON, nullable=False),  # those spanning several appliances
    Column("control_plane", Boolean, nullable=False),
    Column("waiting", Text, nullable=False),
    Column("released_at", Float),
)
Index("rollout_targets_by_site", rollout_targets.c.revision, rollout_targets.c.site)

healthy_digests = Table(
    "healthy_digests",
    metadata,
    Column("appliance", String(ID), primary_key=True),
    Column("digest", String(DIGEST), primary_key=True),
    Column("first_healthy_at", Float, nullable=False),
)

agents = Table(
    "agents",
    metadata,
    Column("appliance", String(ID), primary_key=True),
    Column("hostname", String(ID), nullable=False),
    Column("ip", String(64), nullable=False),
    Column("arch", String(16), nullable=False),
    Column("agent_version", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("registered_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
)

reports = Table(
    "reports",
    metadata,
    Column("appliance", String(ID), primary_key=True),
    Column("received_at", Float, nullable=False),
    Column("applied_digest", String(DIGEST)),
    Column("healthy", Boolean, nullable=False),
    Column("body", JSON, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("level", String(8), nullable=False),  # info | warning | error
    Column("kind", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("site", String(ID)),
    Column("appliance", String(ID)),
    Column("revision", String(SHA)),
    Column("key", String(128)),  # set by agents so a resent event is stored once
    UniqueConstraint("appliance", "key", name="events_once_per_key"),
)
Index("events_by_site", events.c.site, events.c.id)
