"""Where libvirt is: the URI built from the agent's configuration, and one-line errors when
libvirt cannot be reached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.drivers.libvirt import Refused, Unreachable, connect, connection_uri


@pytest.mark.parametrize(
    ("options", "uri"),
    [
        ({}, "qemu:///system"),
        ({"socket": "/run/libvirt/libvirt-sock"}, "qemu:///system"),
        ({"socket": "/srv/libvirt sock"}, "qemu+unix:///system?socket=/srv/libvirt%20sock"),
        (
            {"ssh_host": "10.0.0.5", "ssh_user": "edge", "ssh_key": "/etc/edgefleet/id_ed25519"},
            "qemu+ssh://edge@10.0.0.5/system?keyfile=/etc/edgefleet/id_ed25519",
        ),
        ({"uri": "test:///default", "ssh_host": "ignored"}, "test:///default"),
    ],
    ids=["default-socket", "run-socket", "other-socket", "ssh", "any-uri"],
)
def test_the_uri_comes_from_the_installer_flags(options: dict[str, Any], uri: str) -> None:
    assert connection_uri(**options) == uri


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ssh_host": "a b", "ssh_user": "edge"}, "'a b' is not a host name"),
        ({"ssh_host": "10.0.0.5", "ssh_user": "x@y"}, "'x@y' is not a user name"),
    ],
)
def test_a_bad_ssh_target_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(Refused, match=message):
        connection_uri(**options)


def test_an_absent_socket_is_one_line_naming_the_uri(tmp_path: Path) -> None:
    uri = connection_uri(socket=str(tmp_path / "libvirt-sock"))

    with pytest.raises(Unreachable) as caught:
        connect(uri)

    message = str(caught.value)
    assert message.startswith(f"libvirt at {uri} is unreachable: ")
    assert "\n" not in message
    assert caught.value.temporary


def test_any_libvirt_uri_is_accepted() -> None:
    connection = connect("test:///default")
    try:
        assert connection.getType() == "TEST"
    finally:
        connection.close()
