"""The store boundary's exceptions, and the one place SQLAlchemy errors are translated.

Callers (the rollout service, the API) never see a SQLAlchemy exception::

    StoreError                 anything the database refused
    ├── StoreUnavailable       temporary: cannot connect, connection lost, locked past the
    │                          busy timeout; retry later, never give up on the loop
    └── StoreConflict          a uniqueness rule was broken: two writers raced for one row

Every translation keeps the original as ``__cause__`` (``raise ... from e``) and a message
without parameters, so values such as token hashes never reach a log line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc


class StoreError(Exception):
    """The database refused an operation."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or stayed locked; the operation may be retried."""


class StoreConflict(StoreError):
    """A uniqueness rule was broken."""


@contextmanager
def translated() -> Iterator[None]:
    """Run a block with SQLAlchemy errors mapped onto the store's tree."""
    try:
        yield
    except exc.IntegrityError as e:
        raise StoreConflict(f"conflicting write: {_summary(e)}") from e
    except (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError) as e:
        raise StoreUnavailable(f"database unavailable: {_summary(e)}") from e
    except exc.SQLAlchemyError as e:
        raise StoreError(f"database error: {_summary(e)}") from e


def _summary(error: exc.SQLAlchemyError) -> str:
    """The driver's first message line, without the statement and its parameters."""
    original = getattr(error, "orig", None)
    text = str(original if original is not None else error.__class__.__name__)
    return text.splitlines()[0][:200] if text else error.__class__.__name__
