"""Alembic's environment: run the migrations on the connection :mod:`.` hands over, inside
the transaction it opened (so stamping and upgrading commit together or not at all)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from reconciler.store.schema import metadata

connection: Connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
