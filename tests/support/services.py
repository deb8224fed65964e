"""What a test does when a real service it needs cannot start here: with CI set it fails
with the reason (CI must run every tier), without CI it skips with the reason."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: every service must start)", pytrace=False)
    pytest.skip(reason)
