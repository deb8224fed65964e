"""A site renders again from the outputs of its last render where a template and its
context did not change, and the result is always what a fresh render gives, byte for byte."""

from __future__ import annotations

import copy
import hashlib
import json
import marshal
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.contract import DesiredState, canonical_json
from agent.signatures import key_id, sign, verify
from reconciler.cli.common import builtin_packs
from reconciler.delivery.documents import may_join, presigner, served_body
from reconciler.rendering import Presigner, Renderer, RenderLimits, parallel, render_sites
from reconciler.rendering.limits import metered
from reconciler.rendering.memo import CheckedTexts, Parts, SiteMemo, context_key, read_key
from reconciler.rendering.sandbox import TemplateFailure
from reconciler.sources import DirectoryTree
from reconciler.validation import check_repository
from tests.support.fleet import FleetFiles


class Counting(Renderer):
    """A renderer that counts the templates its sandbox renders (in this process), in all
    and by name."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.rendered = 0
        self.by_name: Counter[str] = Counter()
        render = self.sandbox.render

        def counted(name: str, source: str, context: dict[str, Any]) -> str:
            self.rendered += 1
            self.by_name[name] += 1
            return render(name, source, context)

        self.sandbox.render = counted  # type: ignore[method-assign]


def render(
    root: Path, renderer: Renderer, *, processes: int = 1, presigner: Presigner | None = None
) -> dict[str, dict[str, str]]:
    checked = check_repository(DirectoryTree(root), builtin=builtin_packs())
    assert not checked.diagnostics, checked.diagnostics
    states = render_sites(
        checked.repo,
        checked.registry,
        revision="r1",
        sites=sorted(checked.repo.sites),
        renderer=renderer,
        processes=processes,
        min_sites=1,
        presigner=presigner,
    )
    return {site: {a: s.model_dump_json() for a, s in d.items()} for site, d in states.items()}


def manifest(states: dict[str, dict[str, str]], site: str, name: str) -> str:
    """The content of the manifest ``name`` that a site's appliances are served."""
    found = [
        m["content"]
        for state in states[site].values()
        for cluster in json.loads(state)["clusters"]
        for m in cluster["manifests"]
        if m["name"] == name
    ]
    assert len(found) == 1, found
    return str(found[0])


def test_a_change_to_one_manifest_renders_only_that_manifest_again(fleet: FleetFiles) -> None:
    renderer = Counting()
    render(fleet.root, renderer)
    first = renderer.rendered
    fleet.edit("profiles/store-1.0.0.yaml", '"{{ vars.storeId }}"', '"{{ vars.storeId }}-tills"')
    renderer.rendered = 0
    again = render(fleet.root, renderer)
    clusters = (fleet.root / "sites").glob("*/clusters/*.yaml")
    stores = sum("- name: store\n" in path.read_text() for path in clusters)
    # the store profile's one inline manifest, once per cluster that uses the profile
    assert first > 10 and stores > 1 and renderer.rendered == stores
    assert again == render(fleet.root, Renderer())
    assert "0001-tills" in str(again)


def test_nothing_renders_again_when_nothing_changed(fleet: FleetFiles) -> None:
    renderer = Counting()
    first = render(fleet.root, renderer)
    renderer.rendered = 0
    assert render(fleet.root, renderer) == first
    assert renderer.rendered == 0


def test_a_template_that_changes_what_later_templates_see_renders_every_time(
    fleet: FleetFiles,
) -> None:
    # the inline manifest adds a label that the manifest after it shows: it renders every
    # time, and the next is reused only as it was made with the label
    fleet.edit(
        "profiles/store-1.0.0.yaml",
        'storeId: "{{ vars.storeId }}"\n',
        "storeId: \"{{ vars.storeId }}{{ site.labels.update({'seen': 'yes'}) or '' }}\"\n"
        "        - name: labels.yaml\n"
        "          content: |\n"
        "            apiVersion: v1\n"
        "            kind: ConfigMap\n"
        "            metadata:\n"
        "              name: labels\n"
        "            data:\n"
        "              seen: \"{{ site.labels.get('seen', 'no') }}\"\n",
    )
    renderer = Counting()
    first = render(fleet.root, renderer)
    counted = renderer.rendered
    renderer.rendered = 0
    assert render(fleet.root, renderer) == first == render(fleet.root, Renderer())
    assert 'seen: "yes"' in manifest(first, "store-1", "labels.yaml")
    assert 0 < renderer.rendered < counted


@pytest.mark.slow
def test_outputs_rendered_in_worker_processes_are_reused(fleet: FleetFiles) -> None:
    renderer = Counting()
    forked = render(fleet.root, renderer, processes=2)
    sites = {p.name for p in (fleet.root / "sites").iterdir()}
    assert set(renderer.memo.sites) == sites and all(renderer.memo.sites.values())
    renderer.rendered = 0
    assert render(fleet.root, renderer) == forked
    assert renderer.rendered == 0
    # most sites render from their outputs: the render stays in this process, where the
    # one changed manifest of each store renders again
    fleet.edit("profiles/store-1.0.0.yaml", '"{{ vars.storeId }}"', '"{{ vars.storeId }}-tills"')
    again = render(fleet.root, renderer, processes=2)
    assert again == render(fleet.root, Renderer(), processes=2)
    clusters = (fleet.root / "sites").glob("*/clusters/*.yaml")
    assert renderer.rendered == sum("- name: store\n" in p.read_text() for p in clusters) > 1


def stores(fleet: FleetFiles) -> int:
    """How many clusters use the store profile."""
    clusters = (fleet.root / "sites").glob("*/clusters/*.yaml")
    return sum("- name: store\n" in path.read_text() for path in clusters)


def add_manifest(fleet: FleetFiles, name: str, data: str) -> None:
    """One more inline manifest in the store profile: a ConfigMap holding ``data``."""
    fleet.edit(
        "profiles/store-1.0.0.yaml",
        "        - name: store-config.yaml\n",
        f"        - name: {name}\n"
        "          content: |\n"
        "            apiVersion: v1\n"
        "            kind: ConfigMap\n"
        "            metadata:\n"
        f"              name: {name.removesuffix('.yaml')}\n"
        "            data:\n"
        f"              {data}\n"
        "        - name: store-config.yaml\n",
    )


@pytest.mark.parametrize(
    ("name", "data", "served"),
    [
        # reads nothing of its site
        ("hours.yaml", "opens: \"{{ '07:00' }}\"", 'opens: "07:00"'),
        # reads one value of its cluster, the same at every store (all are containerized)
        ("mode.yaml", 'mode: "{{ cluster.mode }}"', 'mode: "containerized"'),
    ],
)
def test_a_manifest_that_reads_nothing_that_differs_between_sites_renders_once_for_the_fleet(
    fleet: FleetFiles, name: str, data: str, served: str
) -> None:
    add_manifest(fleet, name, data)
    renderer = Counting()
    states = render(fleet.root, renderer)
    inline = "profiles/store-1.0.0.yaml#"
    assert stores(fleet) > 1
    assert renderer.by_name[inline + name] == 1
    assert renderer.by_name[inline + "store-config.yaml"] == stores(fleet)
    # every store is served it, as if each had rendered it
    assert states == render(fleet.root, Renderer())
    for site in ("store-1", "restaurant-7"):
        assert served in manifest(states, site, name)


def test_a_manifest_that_reads_its_site_renders_at_every_site(fleet: FleetFiles) -> None:
    add_manifest(fleet, "tz.yaml", 'zone: "{{ site.timezone }}"')
    fleet.edit("sites/store-1/site.yaml", "timezone: Europe/Berlin", "timezone: Europe/Lisbon")
    renderer = Counting()
    states = render(fleet.root, renderer)
    assert renderer.by_name["profiles/store-1.0.0.yaml#tz.yaml"] == stores(fleet) > 1
    assert manifest(states, "store-1", "tz.yaml").endswith('zone: "Europe/Lisbon"\n')
    assert manifest(states, "restaurant-7", "tz.yaml").endswith('zone: "Europe/Berlin"\n')


def test_a_template_that_draws_a_random_number_renders_at_every_site(
    fleet: FleetFiles,
) -> None:
    add_manifest(fleet, "minute.yaml", 'minute: "{{ range(60) | random }}"')
    renderer = Counting()
    render(fleet.root, renderer)
    assert renderer.by_name["profiles/store-1.0.0.yaml#minute.yaml"] == stores(fleet) > 1


def test_a_template_reads_the_paths_it_follows_whichever_way_it_goes() -> None:
    sandbox = Renderer().sandbox
    source = "{% set n = site.name %}{% if x %}{{ values.a }}{% else %}{{ n }}{% endif %}"
    name, a = (".", "name"), (".", "a")
    assert sandbox.reads(source) == (("site", ((name,),)), ("values", ((a,),)), ("x", ((),)))
    # a name looped over or passed whole is read whole
    assert sandbox.reads("{% for k in packs %}{{ k }}{{ loop.index }}{% endfor %}") == (
        ("packs", ((),)),
    )
    assert sandbox.reads("{{ values }}{{ values.a }}") == (("values", ((),)),)
    # whether it holds a key is a step of its own
    assert sandbox.reads("{{ packs.k3s.v if 'k3s' in packs.all }}") == (
        ("packs", (((".", "all"), ("in", "k3s")), ((".", "k3s"), (".", "v")))),
    )
    # a subscript by a variable ends the path there; a method call is a step like any other
    source = "{{ values.paths[cluster.mode].x }}{{ cluster.config.get('vip') }}{{ v[0]['k'] }}"
    assert sandbox.reads(source) == (
        ("cluster", (((".", "config"), (".", "get")), ((".", "mode"),))),
        ("v", ((("[]", 0), ("[]", "k")),)),
        ("values", (((".", "paths"),),)),
    )
    assert sandbox.reads("kind: ConfigMap") == ()
    assert sandbox.reads("{{ [1, 2] | random }}") is None  # never shared
    assert sandbox.reads("{% if %}") is None  # does not parse: renders, and fails there


def test_a_change_to_what_templates_see_renders_them_again(fleet: FleetFiles) -> None:
    renderer = Counting()
    render(fleet.root, renderer)
    fleet.edit("sites/store-1/clusters/pos.yaml", 'storeId: "0001"', 'storeId: "0011"')
    renderer.rendered = 0
    again = render(fleet.root, renderer)
    assert again == render(fleet.root, Renderer())
    assert "0011" in str(again["store-1"]) and renderer.rendered > 0


def test_an_output_reused_costs_the_memory_its_rendering_did() -> None:
    memo = SiteMemo(previous={b"key": ("kind: ConfigMap\n", 1000)})
    with metered(RenderLimits(memory=1500)) as meter:
        assert memo.reuse(b"key") == "kind: ConfigMap\n"
        assert meter.memory_left == 500 and b"key" in memo.made
        # once more would break the limit: the template renders again, and fails there
        assert memo.reuse(b"key") is None and meter.memory_left == 500
    assert memo.reuse(None) is None and memo.reuse(b"other") is None


def test_a_changed_pack_value_reaches_the_nodes_after_a_render_from_memory(
    fleet: FleetFiles,
) -> None:
    renderer = Counting()
    first = render(fleet.root, renderer)
    fleet.edit(
        "sites/store-1/clusters/pos.yaml",
        "        maxPods: 80\n",
        "        maxPods: 80\n    calico:\n      values:\n        mtu: 1380\n",
    )
    again = render(fleet.root, renderer)
    assert again == render(fleet.root, Renderer())
    assert 'veth_mtu: "1380"' in manifest(again, "store-1", "calico.yaml")
    assert 'veth_mtu: "1380"' not in manifest(first, "store-1", "calico.yaml")
    assert again["restaurant-7"] == first["restaurant-7"]


@pytest.mark.parametrize("processes", [1, 2])
def test_the_states_canonical_json_is_kept_only_when_asked(
    fleet: FleetFiles, processes: int
) -> None:
    """The reconciler stores each state's canonical JSON as rendering made it; a render
    or a plan keeps none (workers would send it all back for nothing)."""
    assert not Renderer().keep_contents
    plain = Renderer()
    states = render(fleet.root, plain, processes=processes)
    assert plain.take_contents() == {}
    keeping = Renderer(keep_contents=True)
    assert render(fleet.root, keeping, processes=processes) == states
    kept = keeping.take_contents()
    digests = {
        json.loads(state)["digest"]
        for appliances in states.values()
        for state in appliances.values()
    }
    assert set(kept) == digests
    for digest, content in kept.items():
        assert "sha256:" + hashlib.sha256(content.encode()).hexdigest() == digest
    # the bytes the agent checks a digest with (written by the definition)
    for appliances in states.values():
        for state in appliances.values():
            parsed = DesiredState.model_validate_json(state)
            assert parsed.computed_digest() == parsed.digest
            assert canonical_json(parsed.content()).decode() == kept[parsed.digest]


@pytest.mark.parametrize("processes", [1, 2])
def test_served_documents_are_signed_on_every_core_once_rendered(
    fleet: FleetFiles, processes: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a presigner, each state's served document (at the revision rendered, with no
    joins) is signed once rendered, on every core: the signatures the forked processes
    make come back."""
    monkeypatch.setattr(parallel, "SIGN_CHUNK", 1)  # a document a chunk: most are forked
    key = Ed25519PrivateKey.generate()
    signers = tmp_path / "signers"

    def signer(body: bytes) -> str:
        with signers.open("a") as file:
            file.write(f"{os.getpid()}\n")
        return sign(body, key)

    renderer = Renderer(keep_contents=True)
    render(fleet.root, renderer, processes=processes, presigner=presigner(signer))
    contents, signatures = renderer.take_contents(), renderer.take_signatures()
    assert signatures and set(signatures) <= set(contents)
    for digest, text in contents.items():
        if may_join(text):  # its joins are known when served: signed then
            assert digest not in signatures
            continue
        body = served_body(text, digest=digest, revision="r1", joins=None)
        assert verify(body, signatures[digest], [key.public_key()]) == key_id(key.public_key())
    forked = set(signers.read_text().split()) - {str(os.getpid())}
    assert bool(forked) == (processes > 1)
    assert renderer.take_signatures() == {}


def test_texts_checked_as_yaml_are_kept_for_two_renders_only(fleet: FleetFiles) -> None:
    """A reconciler renders for months: what it remembers having checked must not grow
    with every revision."""
    renderer = Renderer()
    render(fleet.root, renderer)
    first = set(renderer.checked.current)
    assert first
    sizes = []
    for number in range(2, 6):  # every store's inline manifest differs at each revision
        fleet.edit(
            "profiles/store-1.0.0.yaml",
            '"{{ vars.storeId }}', f'"{{{{ vars.storeId }}}}-r{number}',
        )  # fmt: skip
        render(fleet.root, renderer)
        sizes.append(len(renderer.checked.current | renderer.checked.previous))
    # the last two renders' texts only (each revision's changed manifests): no growth
    assert sizes[1] == sizes[2] == sizes[3] < sizes[0], sizes
    assert not first <= renderer.checked.current | renderer.checked.previous


def test_a_text_checked_by_the_render_before_is_not_checked_again() -> None:
    checked = CheckedTexts()
    checked.add(1)
    checked.next_render()
    assert 1 in checked and 1 in checked.current  # seen again: kept for the next render
    checked.next_render()
    checked.next_render()
    assert 1 not in checked and 2 not in checked


PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", "b", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("ab"), inner),
    max_leaves=8,
)
CONTEXTS = st.dictionaries(st.sampled_from(["values", "packs", "site"]), PLAIN, max_size=3)


@settings(max_examples=400, deadline=None)
@given(first=CONTEXTS, second=CONTEXTS)
def test_two_contexts_share_a_key_exactly_when_they_hold_the_same_in_the_same_order(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    """The key is made of the values' keys (a mapping of mappings by its members'): still
    the same key for the same content in the same order, whatever objects hold it, and
    another for anything else."""
    parts: Parts = {}
    same = marshal.dumps(first, 2) == marshal.dumps(second, 2)
    assert (context_key(first, parts) == context_key(second, parts)) == same
    assert context_key(first, parts) == context_key(copy.deepcopy(first))


STEPS = st.lists(
    st.tuples(st.sampled_from([".", "[]"]), st.sampled_from(["a", "b", "get", "items", 0, 1])),
    max_size=3,
)


def _expression(name: str, path: list[tuple[str, str | int]], member: str | None) -> str:
    text = name
    for kind, step in path:
        text += f"[{step!r}]" if kind == "[]" or type(step) is int else f".{step}"
    return text if member is None else f"{member!r} in {text}"


@settings(max_examples=400, deadline=None)
@given(
    first=CONTEXTS,
    second=CONTEXTS,
    paths=st.lists(
        st.tuples(STEPS, st.none() | st.sampled_from(["a", "get"])), min_size=1, max_size=3
    ),
)
def test_two_contexts_that_share_a_read_key_render_a_template_the_same(
    first: dict[str, Any],
    second: dict[str, Any],
    paths: list[tuple[list[tuple[str, str | int]], str | None]],
) -> None:
    """What makes outputs shared between sites: when the values at the end of a template's
    paths (followed as the sandbox does, methods of mappings and missing items included)
    are the same, so is what it renders; or it fails with both (a failure is never kept,
    and its message may name what was missing)."""
    sandbox = Renderer().sandbox
    names = ["values", "packs", "site"]
    source = "".join(
        f"{{{{ ({e}) is defined }}}} {{{{ ({e}) | tojson }}}}|"
        for e in (_expression(names[i % 3], *path) for i, path in enumerate(paths))
    )
    reads = sandbox.reads(source)
    assert reads is not None

    def outcome(context: dict[str, Any]) -> str:
        try:
            return sandbox.render("t", source, copy.deepcopy(context))
        except TemplateFailure as e:
            return f"failed: {type(e).__name__}"

    if read_key(first, reads) == read_key(second, reads):
        assert outcome(first) == outcome(second), source


def test_a_context_that_is_not_plain_data_has_no_key() -> None:
    assert context_key({"values": {"a": {"b": object()}}}) is None
    assert context_key({"site": [1, object()]}) is None
