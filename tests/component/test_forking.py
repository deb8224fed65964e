"""Work shared with forked processes: each chunk's result comes back in order, made where the
caller's memory was inherited (nothing sent but the chunk), through a private folder that
is gone afterwards; a failure in a forked process is raised in the caller. And a large
fleet's files, parsed on two cores, load exactly as in one process."""

from __future__ import annotations

import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.signatures import key_id, sign, verify
from reconciler.forking import forked_map, shared_map
from reconciler.loading import ParseCache, load_repository
from reconciler.loading import repository as loading
from reconciler.sources import GitRepository
from tests.support.fleet import FleetFiles

MAPS = [forked_map, shared_map]


@pytest.fixture(autouse=True)
def private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the results pass: a folder of this test's own."""
    folder = tmp_path / "temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.parametrize("mapping", MAPS)
def test_each_chunk_comes_back_in_order_made_with_what_was_inherited(
    mapping: Callable[..., Any], private_temp: Path
) -> None:
    lock = threading.Lock()  # a closure over what does not pickle: inherited, never sent
    caller = os.getpid()

    def work(chunk: range) -> tuple[int, list[int], bool, list[int]]:
        time.sleep(0.02)  # long enough for every process to take chunks
        with lock:
            modes = [stat.S_IMODE(p.stat().st_mode) for p in private_temp.iterdir()]
            return os.getpid(), [n * n for n in chunk], bool(modes), modes

    chunks = [range(i, i + 3) for i in range(0, 60, 3)]
    results = list(mapping(work, chunks, 2))
    assert [r[1] for r in results] == [[n * n for n in c] for c in chunks]
    pids = {r[0] for r in results}
    assert len(pids) == 2
    assert (caller in pids) == (mapping is shared_map)
    # the results' folder is this user's alone while the work runs, and gone after
    assert all(r[2] and set(r[3]) == {0o700} for r in results if r[0] != caller)
    assert list(private_temp.iterdir()) == []


@pytest.mark.parametrize("mapping", MAPS)
def test_a_failure_in_a_forked_process_is_raised_in_the_caller(
    mapping: Callable[..., Any], private_temp: Path
) -> None:
    caller = os.getpid()

    def work(chunk: int) -> int:
        if chunk == 7 and os.getpid() != caller:
            raise ValueError("chunk seven")
        return chunk

    with pytest.raises(ValueError, match="chunk seven"):
        list(mapping(work, list(range(8)), 2))
    assert list(private_temp.iterdir()) == []


def test_one_process_maps_in_this_one() -> None:
    assert shared_map(lambda c: (os.getpid(), c), [1, 2], 1) == [(os.getpid(), 1), (os.getpid(), 2)]


# -- a large fleet's files parsed on two cores ------------------------------------------------


@pytest.fixture
def parsed_ahead(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Parsing ahead from the first file on, with the number of files each time it forks."""
    calls: list[int] = []
    real = loading.forked_map

    def counted(work: Any, chunks: Any, processes: int) -> Any:
        calls.append(len(chunks))
        return real(work, chunks, processes)

    monkeypatch.setattr(loading, "PARSE_AHEAD_FILES", 1)
    monkeypatch.setattr(loading, "PARSE_CHUNK", 2)
    monkeypatch.setattr(loading, "forked_map", counted)
    yield calls


def committed(root: Path) -> GitRepository:
    repo = pygit2.init_repository(str(root))
    repo.index.add_all()
    repo.index.write()
    signature = pygit2.Signature("test", "test@example.test", 1_700_000_000, 0)
    tree = repo.index.write_tree()
    repo.create_commit("refs/heads/main", signature, signature, "fleet", tree, [])
    return GitRepository(root)


def summary(repo: loading.FleetRepo) -> Any:
    sites = {
        name: [
            [d.path, d.model.model_dump(mode="json")]
            for d in [*([s.site] if s.site else []), *s.appliances, *s.clusters, *s.profiles]
        ]
        for name, s in repo.sites.items()
    }
    return sites, [str(d) for d in repo.diagnostics], sorted(repo.broken)


def test_files_parsed_on_two_cores_load_as_in_one(
    fleet: FleetFiles, parsed_ahead: list[int]
) -> None:
    # every kind of file a site folder can hold, broken ones too
    fleet.write("sites/store-1/appliances/bad-yaml.yaml", "metadata: [unclosed\n")
    (fleet.root / "sites/store-1/appliances/latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (fleet.root / "sites/store-1/appliances/huge.yaml").write_bytes(
        b"# " + b"x" * (loading.MAX_FILE_BYTES + 1) + b"\n"
    )
    fleet.write("sites/store-1/notes/stray.yaml", "a: 1\n")
    fleet.write("sites/restaurant-7/clusters/wrong-kind.yaml", "apiVersion: x\nkind: Site\n")
    tree = committed(fleet.root).tree("main")
    one = load_repository(tree, processes=1)
    assert parsed_ahead == []
    two = load_repository(tree, processes=2)
    assert parsed_ahead and parsed_ahead[0] > 1
    assert summary(two) == summary(one)
    messages = " ".join(summary(one)[1])
    for expected in ("bad-yaml.yaml:1", "not UTF-8", "byte limit", "stray.yaml", "wrong-kind"):
        assert expected in messages
    # with a parse cache: filled as in one process, and nothing parsed twice
    caches: list[ParseCache] = [{}, {}]
    for processes, cache in zip((1, 2), caches, strict=True):
        load_repository(tree, processes=processes, cache=cache)
    assert {k: str(v) for k, v in caches[0].items()} == {k: str(v) for k, v in caches[1].items()}
    before = len(parsed_ahead)
    assert summary(load_repository(tree, processes=2, cache=caches[1])) == summary(one)
    assert len(parsed_ahead) == before  # every file was in the cache: no fork


def test_forked_processes_sign_while_threads_of_the_caller_sign() -> None:
    """The render's documents are signed in forked processes while the server's own threads
    sign (documents made on demand): a process forked while another thread was inside
    OpenSSL must not hang on a lock it inherited taken. Fifty rounds of forks, each beside
    three threads signing without a pause, all come back with valid signatures."""
    key = Ed25519PrivateKey.generate()
    body = b'{"appliance":"store-1-a","clusters":[],"site":"store-1"}' * 700  # ~40 KB
    stop = threading.Event()

    def keep_signing() -> None:
        while not stop.is_set():
            sign(body, key)

    def signed(chunk: list[int]) -> list[str]:
        return [sign(body, key) for _ in chunk]

    def rounds(results: list[list[str]]) -> None:
        for _ in range(50):
            for part in shared_map(signed, [[0, 1], [2, 3], [4, 5]], 2):
                results.append(part)

    signers = [threading.Thread(target=keep_signing, daemon=True) for _ in range(3)]
    for thread in signers:
        thread.start()
    results: list[list[str]] = []
    forking = threading.Thread(target=rounds, args=(results,), daemon=True)
    try:
        forking.start()
        forking.join(120)
        assert not forking.is_alive(), f"a forked signer hung ({len(results)} chunks back)"
    finally:
        stop.set()
    assert len(results) == 150
    expected = key_id(key.public_key())
    assert all(verify(body, s, [key.public_key()]) == expected for part in results for s in part)
