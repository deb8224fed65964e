"""A service the suite starts that cannot run here: skipped with the reason, failed with it
when ``CI`` is set."""

from __future__ import annotations

import pytest

from tests.support.services import unavailable


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_under_ci_a_missing_service_fails_the_test(
    monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="^no Docker engine: gone \\(CI is set"):
        unavailable("no Docker engine: gone")


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_elsewhere_it_is_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="^no Docker engine: gone$"):
        unavailable("no Docker engine: gone")
