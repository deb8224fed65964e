"""A virtual node carries its profiles' tags in its domain's metadata, as a container carries
them in its labels: rendered by the libvirt driver's template and read back as they were."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from agent.drivers.libvirt.observing import parse_metadata
from agent.drivers.libvirt.rendering import NodeMetadata, SeedRef, Templates


def test_the_profile_tags_round_trip_through_the_domain_metadata() -> None:
    node = NodeMetadata(
        appliance="hospital-1-kvm-01",
        cluster="clinical",
        pool="control-plane",
        node="clinical-control-plane-1",
        role="control-plane",
        revision="r1",
        digest="sha256:" + "0" * 64,
        spec="sha256:" + "1" * 64,
        seed=SeedRef("seeds", "clinical-control-plane-1-seed.iso"),
        labels=(("edgefleet.dev/compliance", "hipaa"), ("edgefleet.dev/vertical", "healthcare")),
    )
    xml = Templates().metadata(node)
    assert "<edgefleet:label name='edgefleet.dev/compliance'>hipaa</edgefleet:label>" in xml
    assert parse_metadata(ET.fromstring(xml)) == node
