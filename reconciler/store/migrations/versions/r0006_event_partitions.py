"""Events kept per partition: indexes on an appliance's events and on each kind, which the
retention of reported and security events reads. Revision ID: 0006."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("events")}
    if "events_by_appliance" not in present:
        op.create_index("events_by_appliance", "events", ["appliance", "id"])
    if "events_by_kind" not in present:
        op.create_index("events_by_kind", "events", ["kind", "id"])


def downgrade() -> None:
    # going back is restoring the backup taken before the upgrade (docs/operations.md)
    raise NotImplementedError("restore the store's backup from before the upgrade")
