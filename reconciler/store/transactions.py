"""The :class:`Store`: one database, reached through short transactions.

Callers open a transaction and use the table groups it carries::

    with store.write() as tx:
        tx.revisions.add(...)
        tx.rollouts.add(...)

Everything inside one ``with`` commits together or not at all. ``write(exclusive=True)``
also serializes the writer against every other exclusive writer, across processes: SQLite
already has one writer at a time; on PostgreSQL a transaction-scoped advisory lock does it,
so two replicas never take rollout decisions at once.

On SQLite the writers of this process also take turns in arrival order before they begin:
SQLite's own busy handler polls, so a thread that commits and begins again at once (the
rollout's ticks while thousands of agents report) could starve the others past the busy
timeout.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from sqlalchemy import Connection, text

from .agents import Agents
from .assignments import Assignments
from .changes import Changes
from .checkpoints import Checkpointer
from .clusters import ClusterJoins, Leases
from .controls import Controls
from .deliveries import Deliveries
from .documents import Documents
from .engines import WRITE_OPTION, open_engine
from .enrolments import Enrolments
from .errors import translated
from .events import Events
from .figures import Figures
from .listings import Listings
from .migrations import open_at_head, upgrade
from .replicas import ChangeSignal, Leadership
from .reports import Reports
from .revisions import Revisions
from .rollouts import Rollouts

DEFAULT_URL = "sqlite:///edgefleet.db"
_ROLLOUT_LOCK = 0x6564_6765  # an arbitrary, fixed advisory lock key


class Turns:
    """A lock granted in arrival order: each waiter blocks on its own event until the
    holder before it hands over."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiting: deque[threading.Event] = deque()

    def __enter__(self) -> None:
        with self._mutex:
            if not self._held:
                self._held = True
                return
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()  # the holder before hands over without letting go

    def __exit__(self, *_exc: object) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._held = False


class Transaction:
    """One open transaction and the table groups bound to it."""

    def __init__(self, conn: Connection) -> None:
        self.connection = conn
        self.revisions = Revisions(conn)
        self.documents = Documents(conn)
        self.assignments = Assignments(conn)
        self.rollouts = Rollouts(conn)
        self.agents = Agents(conn)
        self.enrolments = Enrolments(conn)
        self.reports = Reports(conn)
        self.events = Events(conn)
        self.controls = Controls(conn)
        self.changes = Changes(conn)
        self.figures = Figures(conn)
        self.deliveries = Deliveries(conn)
        self.listings = Listings(conn)
        self.joins = ClusterJoins(conn)
        self.leases = Leases(conn)


class Store:
    """The reconciler's database, from a URL: ``sqlite:///PATH`` (default) or
    ``postgresql+psycopg://USER@HOST/DB``. An empty database is created at the current
    schema; one at another schema raises :class:`SchemaMismatch` (see :mod:`.migrations`)."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = url
        with translated():
            self._engine = open_engine(url)
            try:
                with self._engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
                    with conn.begin():
                        open_at_head(conn, url)
            except BaseException:
                self._engine.dispose()
                raise
        self._writers = Turns() if self.dialect == "sqlite" else None
        self.checkpoints = Checkpointer(self._engine) if self.dialect == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        """A consistent read-only view (one snapshot); nothing it does is committed."""
        with translated(), self._engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield Transaction(conn)

    @contextmanager
    def write(self, *, exclusive: bool = False) -> Iterator[Transaction]:
        """A transaction committed when the block ends without an exception."""
        turn = self._writers or nullcontext()
        with turn, translated(), self._engine.connect() as conn:
            conn = conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                if exclusive and self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ROLLOUT_LOCK})
                yield Transaction(conn)
        if self.checkpoints is not None:
            self.checkpoints.committed()

    def leadership(self) -> Leadership:
        """The lock that makes one process of several the one that reconciles."""
        return Leadership(self._engine)

    def change_signal(self) -> ChangeSignal:
        """Wakes on every change a writer logs, in any process (PostgreSQL)."""
        return ChangeSignal(self._engine)

    def ping(self) -> None:
        """Raises StoreUnavailable when the database cannot be reached."""
        with translated(), self._engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            conn.rollback()

    def close(self) -> None:
        if self.checkpoints is not None:
            self.checkpoints.stop()
        self._engine.dispose()


def upgrade_schema(url: str) -> tuple[str, str]:
    """Bring the database at ``url`` to the current schema (``edgefleet db upgrade``): the
    revision it was at (``empty``; the baseline for one created before migrations) and now."""
    with translated():
        engine = open_engine(url)
        try:
            with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
                with conn.begin():
                    return upgrade(conn, url)
        finally:
            engine.dispose()
