"""Bad numbers in YAML are ``file:line: integer too large``; any YAML scalar either loads or is
one clean error; an unexpected exception during a reconcile records the commit as failed with
a one-line reason, and only git and store errors leave it to be tried again."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.loading.yamldocs import YamlError, load_documents
from reconciler.rollout import RolloutService
from reconciler.service import Loop, Reason, Reconciler
from reconciler.sources import GitRepository, SourceError
from reconciler.store import Store, StoreError
from tests.service.agents import Agent
from tests.support.fleet import FleetFiles
from tests.support.hostile import (
    BOOTSTRAP,
    SECRET,
    Served,
    assert_not_leaked,
    edgefleet,
    run_measured,
)

HUGE = "9" * 5000
TOO_LARGE = "integer too large (beyond 64 bits; quote it to keep it as text)"

# (id, file, text in it, replacement)
NUMBERS = [
    ("5000-digits", "fleet.yaml", "maxFailures: 10%", f"maxFailures: {HUGE}"),
    ("pool-size", "sites/store-1/clusters/pos.yaml", "size: 1", "size: 99999999999999999999"),
    ("hex", "sites/store-1/clusters/pos.yaml", "size: 1", "size: 0x" + "f" * 17),
    ("negative", "sites/store-1/clusters/pos.yaml", "size: 1", "size: -9223372036854775809"),
    ("tagged", "sites/store-1/clusters/pos.yaml", "size: 1", f"size: !!int {HUGE}"),
    ("underscores", "sites/store-1/site.yaml", "region: emea", "region: 1" + "_000" * 30),
    ("in-a-list", "sites/store-1/site.yaml", "region: emea", f"region: [1, 2, {HUGE}]"),
    ("pack-values", "sites/store-1/clusters/pos.yaml", "maxPods: 80", f"maxPods: {HUGE}"),
]


@pytest.mark.parametrize(
    ("rel", "old", "new"), [row[1:] for row in NUMBERS], ids=[row[0] for row in NUMBERS]
)
def test_validate_says_integer_too_large_at_its_line(
    probed: FleetFiles, work: Path, rel: str, old: str, new: str
) -> None:
    probed.edit(rel, old, new)
    line = probed.line_of(rel, new.split(":")[0] + ":")

    done = run_measured(edgefleet("validate", str(probed.root)), work=work)

    assert done.code == 1
    assert f"{rel}:{line}: {TOO_LARGE}" in done.out.splitlines(), done.out
    assert "Traceback" not in done.out + done.err
    assert_not_leaked(SECRET, done.out, done.err)
    assert done.seconds < 15


def test_the_largest_64_bit_integers_still_load() -> None:
    assert load_documents("a: 9223372036854775807\nb: -9223372036854775808\nc: 0x7f\n") == [
        {"a": 2**63 - 1, "b": -(2**63), "c": 127}
    ]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_plain_scalar_loads_or_is_one_clean_error(text: str) -> None:
    for document in (f"a: {text}\n", f"- {text}\n", f"{text}\n", f"a: !!int {text}\n"):
        try:
            load_documents(document)
        except YamlError as e:
            assert e.line >= 1 and "\n" not in e.message


@settings(max_examples=200, deadline=None)
@given(st.integers())
def test_integers_load_exactly_within_64_bits_and_are_refused_beyond(number: int) -> None:
    for written in (str(number), hex(number) if number >= 0 else str(number)):
        if -(2**63) <= number < 2**63:
            assert load_documents(f"a: {written}\n") == [{"a": number}]
        else:
            with pytest.raises(YamlError, match="integer too large"):
                load_documents(f"a: {written}\n")


# -- the reconcile loop ---------------------------------------------------------------------


class ExplodingTree:
    """Built-in packs whose reading raises what no code expects (a bug some input reaches)."""

    def __init__(self) -> None:
        self.collecting: list[bool] = []  # whether the garbage collector ran when it was read

    def files(self, prefix: str = "") -> Iterator[str]:
        self.collecting.append(gc.isenabled())
        raise RuntimeError(f"the unexpected, near {SECRET}\nsecond line")
        yield ""

    def size(self, path: str) -> int:
        raise RuntimeError("the unexpected")

    def read(self, path: str) -> bytes:
        raise RuntimeError("the unexpected")

    def exists(self, path: str) -> bool:
        return True


@pytest.fixture
def rollout(tmp_path: Path) -> RolloutService:
    return RolloutService(store=Store(f"sqlite:///{tmp_path / 'r.db'}"))


def test_an_unexpected_exception_records_the_commit_as_failed(
    probed: FleetFiles, rollout: RolloutService
) -> None:
    git = GitRepository(probed.root)
    sha = str(git.resolve("HEAD").id)
    exploding = ExplodingTree()
    reconciler = Reconciler(git=git, rollout=rollout, builtin=(exploding, "packs"))

    gc.enable()
    outcome = reconciler.reconcile(sha)

    assert not outcome.published and outcome.reason is Reason.CRASHED
    # the collector pauses while the fleet loads, and comes back after the crash
    assert exploding.collecting == [False] and gc.isenabled()
    (error,) = outcome.errors
    assert error.startswith("internal error: RuntimeError: the unexpected, near ***")
    assert "\n" not in error
    with rollout.store.read() as tx:
        recorded = tx.revisions.get(sha)
    assert recorded is not None and recorded.outcome == "failed"
    assert list(recorded.errors) == [error]


def test_the_loop_retries_a_temporary_error_and_not_a_recorded_failure(
    probed: FleetFiles, rollout: RolloutService
) -> None:
    git = GitRepository(probed.root)
    head = str(git.resolve("HEAD").id)
    calls: list[str] = []
    raising: list[Exception] = [StoreError("database locked"), SourceError("pack missing")]

    def reconcile(sha: str) -> None:
        calls.append(sha)
        if raising:
            raise raising.pop(0)

    class Head:
        def head(self) -> str:
            return head

    now = [0.0]
    loop = Loop(Head(), reconcile, clock=lambda: now[0])  # type: ignore[arg-type]
    loop.step()  # the store fails: not seen
    loop.step()  # backing off: not tried
    assert (calls, loop.seen) == ([head], None)
    now[0] += 10
    loop.step()  # git fails: not seen
    now[0] += 10
    loop.step()  # reconciled (published or recorded as failed): seen
    loop.step()
    assert (len(calls), loop.seen) == (3, head)


def test_the_server_fails_a_huge_integer_and_goes_on(served: Served) -> None:
    served.start()
    agent = Agent(served.url, "store-1-a", bootstrap=BOOTSTRAP)
    assert agent.register().status_code == 200
    good = agent.digest()
    rel = "sites/store-1/clusters/pos.yaml"
    served.fleet.edit(rel, "size: 1", f"size: {HUGE}")
    line = served.fleet.line_of(rel, "size: 9")

    outcome, errors = served.outcome(served.commit("a 5,000-digit pool size"))

    assert (outcome, errors) == ("failed", [f"{rel}:{line}: {TOO_LARGE}"])
    assert agent.digest() == good
    served.fleet.edit(rel, f"size: {HUGE}", "size: 1")
    served.fleet.edit(rel, '"30 2 * * *"', '"45 2 * * *"')
    assert served.outcome(served.commit("fixed, and a later backup"))[0] == "good"
    agent.close()
    assert "Traceback" not in served.log()
