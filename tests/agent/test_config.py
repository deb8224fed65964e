"""The agent's configuration file: a wrong value is one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import AgentConfig, ConfigError, load_config


def write(path: Path, boot: str) -> Path:
    path.write_text(
        "applianceId: clinic-5-hv1\nip: 192.0.2.31\nisVirtual: true\n" + boot, encoding="utf-8"
    )
    return path


def test_a_direct_boot_names_the_kernel_and_initrd_the_virtual_machines_boot(
    tmp_path: Path,
) -> None:
    config = load_config(
        write(
            tmp_path / "agent.yaml",
            "libvirtDirectBoot: {kernel: /boot/vmlinuz, initrd: /boot/initrd.img}\n",
        )
    )

    assert config.libvirtDirectBoot is not None
    assert (config.libvirtDirectBoot.kernel, config.libvirtDirectBoot.cmdline) == (
        "/boot/vmlinuz",
        "console=ttyS0",
    )
    assert AgentConfig(applianceId="a", ip="192.0.2.1").libvirtDirectBoot is None


@pytest.mark.parametrize(
    "boot",
    [
        "libvirtDirectBoot: {kernel: vmlinuz, initrd: /boot/initrd.img}\n",
        "libvirtDirectBoot: {kernel: /boot/vmlinuz, initrd: ../initrd.img}\n",
        "libvirtDirectBoot: {kernel: /boot/vmlinuz}\n",
        "libvirtDirectBoot: {kernel: /boot/vmlinuz, initrd: /i, append: x}\n",
    ],
)
def test_a_wrong_direct_boot_is_one_line_naming_the_key(tmp_path: Path, boot: str) -> None:
    path = write(tmp_path / "agent.yaml", boot)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: libvirtDirectBoot.") and "\n" not in message
