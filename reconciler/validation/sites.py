"""Rules within one site's own files."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from ..errors import Diagnostic
from ..loading import SiteFiles


def check_site(site: SiteFiles) -> Iterator[Diagnostic]:
    if site.site is None:
        return
    doc = site.site
    cidrs = doc.model.spec.network.cidrs
    for a in range(len(cidrs)):
        for b in range(a + 1, len(cidrs)):
            if ipaddress.ip_network(cidrs[a]).overlaps(ipaddress.ip_network(cidrs[b])):
                yield doc.at(
                    ("spec", "network", "cidrs", b),
                    f"site CIDR {cidrs[b]} overlaps site CIDR {cidrs[a]}",
                )
