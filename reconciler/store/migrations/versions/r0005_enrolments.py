"""One-time enrolment tokens (``enrolments``): each bound to one appliance, kept as a hash
until it is used or expires. Revision ID: 0005."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None

ID = 253


def upgrade() -> None:
    if "enrolments" not in set(sa.inspect(op.get_bind()).get_table_names()):
        op.create_table(
            "enrolments",
            sa.Column("appliance", sa.String(ID), primary_key=True),
            sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
            sa.Column("issued_by", sa.String(ID), nullable=False),
            sa.Column("issued_at", sa.Float, nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
        )


def downgrade() -> None:
    # going back is restoring the backup taken before the upgrade (docs/operations.md)
    raise NotImplementedError("restore the store's backup from before the upgrade")
