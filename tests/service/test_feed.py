"""The change feed hands on what other processes logged, and not, a second time, what this
one did: a wave's documents are made and signed once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reconciler.delivery import ChangeFeed
from reconciler.delivery.notifications import Notifier
from reconciler.rollout import RolloutService
from reconciler.store import ChangeRecord, Store

from .fleets import WAVES, release, revision, site


def test_the_feed_hands_on_changes_made_elsewhere_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    store = Store(url)
    notifier = Notifier()
    handed: list[ChangeRecord] = []

    def listener(changes: Sequence[ChangeRecord]) -> None:
        handed.extend(changes)

    notifier.listen(listener)
    feed = ChangeFeed(store=store, notifier=notifier)
    # this process records a release and opens its first wave: its changes are handed on
    # as they are made
    rollout = RolloutService(store=store, notifier=notifier)
    sites = [site("canary-1", ring="canary"), *(site(f"store-{n}") for n in range(5))]
    rollout.record_release(release(revision("r1"), sites, waves=WAVES))
    own = list(handed)
    assert own and {c.appliance for c in own} == {"canary-1-edge"}
    # read back from the log, they are not handed on again
    assert feed.poll() == len(own)
    assert handed == own
    # what another process logs is
    other = Store(url)
    elsewhere = ChangeRecord("token", "store-3-edge", at=12345.5)
    with other.write() as tx:
        tx.changes.add([elsewhere])
    assert feed.poll() == 1
    assert [(c.kind, c.appliance, c.at) for c in handed[len(own) :]] == [
        ("token", "store-3-edge", 12345.5)
    ]
    assert feed.poll() == 0
