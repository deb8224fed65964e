"""The reboot gate the day-2 patching asks before it reboots a control-plane node of a
cluster spanning appliances: the reconciler's lease (``POST /v1/leases``), held by one member
appliance of the cluster at a time. Built by :mod:`agent.wiring`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.link.client import AgentLink, LinkError

log = logging.getLogger(__name__)


class LeaseGate:
    """:class:`agent.daytwo.patching.RebootGate` over the agent link; ``token`` reads the
    agent's current token. A reconciler that cannot be asked grants nothing: a reboot that
    might break quorum waits rather than guess."""

    def __init__(self, *, link: AgentLink, token: Callable[[], str]) -> None:
        self._link = link
        self._token = token

    def acquire(self, cluster: str, *, seconds: float) -> str | None:
        try:
            found = self._link.lease(self._token(), cluster, seconds=seconds)
        except (LinkError, OSError) as e:
            return f"the reconciler cannot grant it now ({e})"
        if found.get("granted") is True:
            return None
        return f"held by {found.get('holder', 'another appliance')}"

    def release(self, cluster: str) -> None:
        try:
            self._link.release_lease(self._token(), cluster)
        except (LinkError, OSError) as e:  # it expires on its own
            log.warning("giving back the reboot lease of %s failed: %s", cluster, e)
