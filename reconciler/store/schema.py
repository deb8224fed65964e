"""The tables, in SQLAlchemy Core. Times are seconds since the epoch (UTC) as floats, so
SQLite and PostgreSQL store and compare them the same way.

``revisions``        every commit the loop handed over: good or failed, with its errors, author
                     and subject
``documents``        desired-state content, once per digest (revision and digest left out)
``assignments``      per appliance: what it is served now and the latest release's target
``rollouts``         per good revision: wave, state, failing sites
``rollout_sites``    per revision and site: wave, labels, windows, admission, soak, failure
``rollout_targets``  per revision and appliance: target digest, disruption, release order
``healthy_digests``  per appliance: every digest it reported applied and healthy (reverts)
``streaks``          per appliance: the digest it runs healthy now, since when, and when that
                     run lasted the soak (proven)
``controls``         operator switches that outlive a revision (the rollout paused)
``changes``          what changed for agents, in order: served states, rotated tokens; every
                     replica follows it to wake its long-polls and drop its caches
``agents``           registrations: facts, token hash, registered and last-seen times
``enrolments``       one-time enrolment tokens, one per appliance: hash, expiry, issuer
``reports``          the latest status report of each appliance
``events``           what happened, for operators (rollout steps, agent events), kept per
                     appliance, site, the fleet and security kind (:mod:`.events`)
``deliveries``       results reported out: commit statuses and webhooks, their attempts
``cluster_joins``    per cluster of a site: its join secret (served only to its member
                     appliances), when it first ran (formed) and when Git dropped it
``leases``           per cluster: which appliance may take its nodes down now (an OS patch's
                     reboots), until when
"""

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
    Column("author", String(100)),  # the commit's author name
    Column("subject", String(200)),  # the first line of its message
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
    Column("display_name", String(200)),  # the appliance's `name` tag
    Column("decommissioned_at", Float),  # removed from Git, its nodes gone, its token revoked
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
    Column("accepted", JSON, nullable=False, default=list),  # failed sites an admin resumed past
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
    Column("descriptions", JSON),  # cluster name -> its description, for operators
)

rollout_targets = Table(
    "rollout_targets",
    metadata,
    Column("revision", String(SHA), ForeignKey("rollouts.revision"), primary_key=True),
    Column("appliance", String(ID), primary_key=True),
    Column("site", String(ID), nullable=False),
    Column("digest", String(DIGEST), ForeignKey("documents.digest")),  # NULL: no state
    Column("changed", Boolean, nullable=False),  # not yet proven healthy on this digest
    Column("revert", Boolean, nullable=False, default=False),  # ran it healthy before
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

streaks = Table(
    "streaks",
    metadata,
    Column("appliance", String(ID), primary_key=True),
    Column("digest", String(DIGEST), nullable=False),  # the latest digest it ran healthy
    Column("since", Float),  # start of the unbroken healthy run on it; NULL: broken now
    Column("proven_at", Float),  # when a run on it first lasted the soak
)

controls = Table(
    "controls",
    metadata,
    Column("name", String(32), primary_key=True),  # paused
    Column("value", JSON, nullable=False),
    Column("set_by", String(ID), nullable=False),
    Column("set_at", Float, nullable=False),
)

changes = Table(
    "changes",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),  # served | token
    Column("appliance", String(ID), nullable=False),
    Column("digest", String(DIGEST)),  # served: the digest now served (NULL: none)
    Column("revision", String(SHA)),
    Column("at", Float, nullable=False),
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

enrolments = Table(
    "enrolments",
    metadata,
    Column("appliance", String(ID), primary_key=True),  # a newer token replaces an unused one
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("issued_by", String(ID), nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

reports = Table(
    "reports",
    metadata,
    Column("appliance", String(ID), primary_key=True),
    Column("received_at", Float, nullable=False),
    Column("applied_digest", String(DIGEST)),
    Column("healthy", Boolean, nullable=False),
    Column("in_use", Boolean, nullable=False, default=False),  # runs a cluster not deleted
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
Index("events_by_appliance", events.c.appliance, events.c.id)  # an appliance's quota
Index("events_by_kind", events.c.kind, events.c.id)  # security events, kept apart

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("destination", String(255), nullable=False),  # "github acme/fleet", a webhook URL
    Column("kind", String(16), nullable=False),  # commit-status | webhook
    Column("event", String(32), nullable=False),  # success, rollout.halted, ...
    Column("revision", String(SHA)),
    Column("state", String(12), nullable=False),  # see reporting.outbox.DeliveryState
    Column("attempts", Integer, nullable=False),
    Column("detail", Text, nullable=False),  # the last answer or error, short
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

cluster_joins = Table(
    "cluster_joins",
    metadata,
    Column("site", String(ID), primary_key=True),
    Column("cluster", String(ID), primary_key=True),
    Column("secret", String(128), nullable=False),  # the k3s join token; never logged
    Column("created_at", Float, nullable=False),
    Column("formed_at", Float),  # a member first reported it Running
    Column("retired_at", Float),  # no longer in the latest release
)

leases = Table(
    "leases",
    metadata,
    Column("site", String(ID), primary_key=True),
    Column("cluster", String(ID), primary_key=True),
    Column("holder", String(ID), nullable=False),  # the appliance
    Column("purpose", String(16), nullable=False),  # patch
    Column("granted_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)
