"""Browser tier: the dashboard in real headless Chromium.

Provides, once per module (Chromium takes a second or two to start):
- ``fleet``: the example fleet in a git repository, reconciled by the real loop into the
  real server on 127.0.0.1, with agents played over HTTP (:class:`ExampleFleet`);
- ``browser``: Debian's headless Chromium driven by Selenium through Debian's chromedriver;
  without them the tests skip with the reason, or fail with it when ``CI`` is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dashboard import Browser, ExampleFleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExampleFleet]:
    served = ExampleFleet(Path(tmp_path_factory.mktemp("dashboard")))
    try:
        yield served
    finally:
        served.close()


@pytest.fixture(scope="module")
def browser(fleet: ExampleFleet) -> Iterator[Browser]:
    chromium = Browser(fleet.base_url)
    try:
        yield chromium
    finally:
        chromium.close()
