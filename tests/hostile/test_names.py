"""Names that become files or folders (manifest names, site, cluster and appliance names) are
plain: whatever a generator tries, an accepted name has no separator, no dot-only name and
no control character (``$`` in a Python regex also matches before a final newline), and the
file ``render --out`` writes for it stays in its folder."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.contract import ClusterState, ManifestFile, seal
from reconciler.cli.render import write_site
from reconciler.models.fleet import Rollout
from reconciler.models.profile import Manifest
from reconciler.models.site import ApplianceMetadata, SiteMetadata
from tests.support.fleet import FleetFiles
from tests.support.hostile import edgefleet, run_measured

NAMES = st.text(alphabet=st.sampled_from("ab1_-./\\\n\r\t\x00 é"), max_size=12)
PLAIN_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@settings(max_examples=400, deadline=None)
@given(NAMES)
def test_a_manifest_name_is_accepted_only_as_a_plain_file_name(name: str) -> None:
    try:
        Manifest(name=name, content="kind: ConfigMap\n")
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == (bool(PLAIN_FILE.fullmatch(name)) and name not in (".", "..")), name
    if accepted:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "out" / "site"
            cluster = ClusterState(
                name="pos",
                mode="containerized",
                packs=[],
                pools=[],
                nodes=[],
                manifests=[ManifestFile(layer="addon", pack="probe", name=name, content="x")],
                schedules=[],
                timezone="UTC",
            )
            state = seal(appliance="a1", site="site", revision="r", clusters=[cluster])
            write_site(out, {"a1": state})
            written = [p for p in Path(folder).rglob("*") if p.is_file()]
            assert all(p.resolve().is_relative_to(out.resolve()) for p in written)
            assert all(p.name.isprintable() for p in written)


@settings(max_examples=400, deadline=None)
@given(NAMES)
def test_a_name_is_accepted_only_as_a_dns_label(name: str) -> None:
    for metadata in (SiteMetadata, ApplianceMetadata):
        try:
            metadata(name=name)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == (bool(NAME.fullmatch(name)) and len(name) <= 63), name


@pytest.mark.parametrize("value", ["10%\n", "10\n%"])
def test_max_failures_must_be_exactly_a_count_or_a_percentage(value: str) -> None:
    with pytest.raises(ValidationError):
        Rollout(waves=[{"name": "all"}], maxFailures=value)


def test_a_quoted_manifest_name_with_a_newline_is_refused_at_its_line(
    fleet: FleetFiles, tmp_path: Path
) -> None:
    fleet.edit("profiles/store-1.0.0.yaml", "- name: store-config.yaml", '- name: "s.yaml\\n"')
    line = fleet.line_of("profiles/store-1.0.0.yaml", '- name: "s.yaml')
    done = run_measured(edgefleet("validate", str(fleet.root)), work=tmp_path)
    assert done.code == 1
    assert f"profiles/store-1.0.0.yaml:{line}: " in done.out
    assert "must be a plain file name, not a path" in done.out
