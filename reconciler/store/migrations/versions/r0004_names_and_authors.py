"""What operators read on the dashboard: each revision's author and subject, each
appliance's display name (its ``name`` tag) and each site's cluster descriptions.
Revision ID: 0004.

Existing rows have none of them until the next revision records them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table, column in (
        ("revisions", sa.Column("author", sa.String(100))),
        ("revisions", sa.Column("subject", sa.String(200))),
        ("assignments", sa.Column("display_name", sa.String(200))),
        ("rollout_sites", sa.Column("descriptions", sa.JSON)),
    ):
        if column.name not in {c["name"] for c in inspector.get_columns(table)}:
            op.add_column(table, column)


def downgrade() -> None:
    # going back is restoring the backup taken before the upgrade (docs/operations.md)
    raise NotImplementedError("restore the store's backup from before the upgrade")
