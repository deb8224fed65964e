"""Rendering fleet-example and hostile templates through ``edgefleet render``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from agent.contract import DesiredState
from agent.secrets.documents import is_sops
from agent.secrets.keys import read_identities
from agent.secrets.opening import open_document
from tests.support.fleet import FleetFiles

# the example appliances' published identities, as `make run` gives them to their agents
DEMO_IDENTITIES = [
    identity
    for path in sorted((Path(__file__).parents[2] / "scripts/demo-age-keys").glob("*.txt"))
    for identity in read_identities(path)
]

# kubernetes-validate knows the built-in kinds only; HelmChart is k3s's CRD (helm.cattle.io/v1),
# checked here against the fields of that CRD, strictly.
HELMCHART_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "helm.cattle.io/v1"},
        "kind": {"const": "HelmChart"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}},
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["chart"],
            "properties": {
                key: {"type": "string"}
                for key in ("chart", "repo", "version", "targetNamespace", "valuesContent")
            }
            | {"createNamespace": {"type": "boolean"}},
        },
    },
}


def render(run_cli, repo: Path, out: Path, *extra: str):
    return run_cli("render", str(repo), "--out", str(out), *extra)


def test_every_rendered_manifest_passes_the_strict_kubernetes_schema(
    run_cli, example_fleet: Path, tmp_path: Path
) -> None:
    result = render(run_cli, example_fleet, tmp_path)
    assert result.code == 0, result.out
    checked = 0
    kinds = set()
    opened = 0
    for path in sorted(tmp_path.glob("*/*/manifests/*")):
        text = path.read_text()
        if is_sops(text):  # what the node gets: the plaintext the appliance's identity opens
            text = open_document(text, DEMO_IDENTITIES).text
            opened += 1
        for document in YAML(typ="safe").load_all(text):
            if document is None:
                continue
            kinds.add(document["kind"])
            if document["apiVersion"] == "helm.cattle.io/v1":
                jsonschema.validate(document, HELMCHART_SCHEMA)
            else:
                kubernetes_validate.validate(document, "1.30", strict=True)
            checked += 1
    assert checked > 100 and opened == 2
    assert {"Deployment", "DaemonSet", "HelmChart", "StorageClass", "ConfigMap", "Secret"} <= kinds


def test_render_writes_each_appliance_state_and_its_files(
    run_cli, example_fleet: Path, tmp_path: Path
) -> None:
    result = render(run_cli, example_fleet, tmp_path, "--site", "hospital-1")
    assert result.code == 0, result.out
    assert [p.name for p in tmp_path.iterdir()] == ["hospital-1"]
    states = sorted((tmp_path / "hospital-1" / "appliances").glob("*.json"))
    assert [p.stem for p in states] == [
        "hospital-1-kvm-01",
        "hospital-1-kvm-02",
        "hospital-1-kvm-03",
    ]
    for path in states:
        state = DesiredState.model_validate_json(path.read_text())
        assert state.digest == state.computed_digest()
        (cluster,) = state.clusters
        assert cluster.mode == "virtualized"
        assert all(node.appliance == path.stem for node in cluster.nodes)
        assert {n.role for n in cluster.nodes} >= {"control-plane"}
    user_data = (tmp_path / "hospital-1/hospital-1-clinical/user-data").glob("*.yaml")
    for path in user_data:
        text = path.read_text()
        assert text.startswith("#cloud-config")
        data = YAML(typ="safe").load(text)
        # the site CA is written as a file and trusted
        assert any("ca-certificates" in f["path"] for f in data["write_files"])
        assert "update-ca-certificates" in json.dumps(data)


def test_unknown_site_is_a_usage_error(run_cli, example_fleet: Path, tmp_path: Path) -> None:
    result = render(run_cli, example_fleet, tmp_path, "--site", "nowhere")
    assert result.code == 2
    assert "no such site: nowhere" in result.err


def test_invalid_repository_is_not_rendered(run_cli, fleet: FleetFiles, tmp_path: Path) -> None:
    fleet.edit("sites/hospital-1/clusters/imaging.yaml", "size: 3", "size: 2")
    result = render(run_cli, fleet.root, tmp_path / "out")
    assert result.code == 1
    assert "control-plane pool size must be 1, 3 or 5 (got 2)" in result.out
    assert not (tmp_path / "out").exists()


def _pack(fleet: FleetFiles, template: str, values: str = "greeting: hello\n") -> None:
    """A repository pack 'probe' whose one manifest is ``template``, used by the store profile."""
    fleet.write("packs/probe/1.0.0/pack.yaml", "name: probe\nversion: 1.0.0\nlayer: addon\n")
    fleet.write("packs/probe/1.0.0/values.yaml", values)
    fleet.write("packs/probe/1.0.0/manifests/probe.yaml.j2", template)
    fleet.edit(
        "profiles/store-1.0.0.yaml",
        "    - layer: addon\n      name: store-config\n",
        "    - layer: addon\n      pack: probe\n      version: 1.0.0\n"
        "    - layer: addon\n      name: store-config\n",
    )


TEMPLATE_ERRORS = [
    (
        "undefined",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: {{ values.nope }}\n",
        6,
        "undefined: 'dict object' has no attribute 'nope'",
    ),
    (
        "sandbox",
        "kind: ConfigMap\n\n\n# {{ values.__class__.__mro__ }}\n",
        4,
        "not allowed in the sandbox",
    ),
    (
        "syntax",
        "kind: ConfigMap\n{% if %}\n",
        2,
        "template syntax error",
    ),
    (
        "not-yaml",
        "kind: ConfigMap\ndata: {{ '[' }}\n",
        2,
        "rendered output is not valid YAML",
    ),
]


@pytest.mark.parametrize(
    ("template", "line", "reason"),
    [case[1:] for case in TEMPLATE_ERRORS],
    ids=[case[0] for case in TEMPLATE_ERRORS],
)
def test_template_errors_name_pack_file_line_site_and_cluster(
    run_cli, fleet: FleetFiles, tmp_path: Path, template: str, line: int, reason: str
) -> None:
    _pack(fleet, template)
    result = render(run_cli, fleet.root, tmp_path / "out")
    assert result.code == 1, result.out
    errors = [line for line in result.out.splitlines() if line.startswith("packs/")]
    assert errors, result.out
    # one error for each store site using the pack
    assert errors[0].startswith(f"packs/probe/1.0.0/manifests/probe.yaml.j2:{line}: {reason}")
    assert errors[0].endswith("(pack probe 1.0.0, site restaurant-7, cluster pos)")
    assert "Traceback" not in result.out + result.err


def test_values_error_points_at_the_values_file_line(
    run_cli, fleet: FleetFiles, tmp_path: Path
) -> None:
    _pack(fleet, "kind: ConfigMap\n", values="a: 1\nb: '{{ site.nope }}'\n")
    result = render(run_cli, fleet.root, tmp_path / "out")
    assert result.code == 1
    assert result.out.splitlines()[0] == (
        "packs/probe/1.0.0/values.yaml:2: undefined: 'dict object' has no attribute 'nope' "
        "(pack probe 1.0.0, site restaurant-7, cluster pos)"
    )


SECRET = "edgefleet-test-secret-6f1d"

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ values.__class__ }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ range.__self__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ values|attr('__class__')|attr('__mro__') }}",
    "{{ '{0.__class__.__mro__}'.format(values) }}",
    "{{ '%s'|format(values.__class__) }}",
    "{{ '{a.__class__}'.format_map(dict(a=values)) }}",
    "{% for c in ''.__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ dict.__base__.__subclasses__() }}",
    "{{ config }}",
    "{{ request }}",
    "{{ environ }}",
    "{% include '/etc/passwd' %}",
    "{% import '/proc/self/environ' as e %}",
    "{{ 'a' * 100000000 }}",
    "{{ [1] * 100000000 }}",
    "{{ 10 ** 100000000 }}",
    "{{ range(1000000000)|list }}",
]


@pytest.mark.parametrize("payload", ESCAPES)
def test_sandbox_escapes_fail_cleanly_and_leak_nothing(
    fleet: FleetFiles, tmp_path: Path, payload: str
) -> None:
    _pack(
        fleet,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: |\n    "
        + payload
        + "\n",
    )
    out = tmp_path / "out"
    env = {**os.environ, "EDGEFLEET_TEST_SECRET": SECRET}
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "render", str(fleet.root), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 1, done.stdout
    assert "Traceback" not in done.stderr
    assert "packs/probe/1.0.0/manifests/probe.yaml.j2:" in done.stdout
    assert SECRET not in done.stdout + done.stderr
    assert "root:x:0" not in done.stdout
    assert not out.exists()


def test_render_is_byte_identical_across_processes(example_fleet: Path, tmp_path: Path) -> None:
    outputs = []
    for seed in ("1", "4242"):
        out = tmp_path / f"out-{seed}"
        subprocess.run(
            [sys.executable, "-m", "reconciler", "render", str(example_fleet), "--out", str(out)],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=120,
        )
        outputs.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()})
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) > 50


@pytest.mark.parametrize(("pack", "kubernetes"), [("1.30.6", "1.30"), ("1.29.8", "1.29")])
def test_kube_vip_holds_a_virtualized_clusters_vip_in_arp_mode(
    run_cli, fleet: FleetFiles, tmp_path: Path, pack: str, kubernetes: str
) -> None:
    fleet.edit("profiles/hospital-1.0.0.yaml", "version: 1.30.6", f"version: {pack}")
    out = tmp_path / "out"
    result = render(run_cli, fleet.root, out)
    assert result.code == 0, result.out
    # the virtualized hospital cluster's control plane holds it; no containerized store
    (found,) = out.glob("*/*/manifests/*kube-vip.yaml")
    assert found.parts[-4:-2] == ("hospital-1", "imaging")
    documents = list(YAML(typ="safe").load_all(found.read_text()))
    for document in documents:
        kubernetes_validate.validate(document, kubernetes, strict=True)
    (daemonset,) = [d for d in documents if d["kind"] == "DaemonSet"]
    (container,) = daemonset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["address"] == "172.16.10.50"
    assert (env["vip_arp"], env["cp_enable"], env["vip_interface"]) == ("true", "true", "enp1s0")
    assert daemonset["spec"]["template"]["spec"]["hostNetwork"] is True
    assert {d["kind"] for d in documents} == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
    }
