"""Install tier: the wheel built from this checkout, installed with its dependencies into a
fresh virtual environment outside the checkout (pip's cache makes a second run quick).

Provides ``installed`` (one per session): the environment's ``bin`` folder, first with the
wheel alone (the appliance's set), then with its ``server`` extra added; tests run its
commands from a folder of their own, never from the checkout.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.services import unavailable

from .wheels import Installation, InstallFailed, build_wheel


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    root = tmp_path_factory.mktemp("install")
    try:
        wheel = build_wheel(root / "dist")
        yield Installation.create(root / "venv", wheel)
    except InstallFailed as e:
        unavailable(f"the wheel could not be built or installed: {e}")
