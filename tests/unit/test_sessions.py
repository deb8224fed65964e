"""Dashboard sessions: a cookie names its operator and expiry under a key derived from their
token, so it ends at its expiry, when the token changes or leaves the file, and cannot be
made up or stretched; the CSRF token belongs to one session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.api.dashboard.sessions import LIFETIME, Sessions
from reconciler.api.operators import OperatorTokens
from tests.support.operators import ADMIN_TOKEN, VIEWER_TOKEN, write_token_file


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def tokens(tmp_path: Path) -> OperatorTokens:
    return OperatorTokens.from_file(write_token_file(tmp_path / "operators"))


def test_a_session_names_its_operator_and_not_the_token(tokens: OperatorTokens) -> None:
    sessions = Sessions(tokens, clock=Clock())
    ada = tokens.authenticate(ADMIN_TOKEN)
    assert ada is not None
    cookie = sessions.open(ada)
    assert ADMIN_TOKEN not in cookie and cookie.startswith("ada:")
    found = sessions.find(cookie)
    assert found is not None and found.operator == ada
    assert sessions.csrf_matches(found, found.csrf)
    assert not sessions.csrf_matches(found, None) and not sessions.csrf_matches(found, "0" * 64)


def test_a_session_ends_at_its_expiry(tokens: OperatorTokens) -> None:
    clock = Clock()
    sessions = Sessions(tokens, clock=clock)
    vera = tokens.authenticate(VIEWER_TOKEN)
    assert vera is not None
    cookie = sessions.open(vera)
    clock.now += timedelta(seconds=LIFETIME - 1)
    assert sessions.find(cookie) is not None
    clock.now += timedelta(seconds=1)
    assert sessions.find(cookie) is None


def test_a_session_ends_when_its_token_changes(tokens: OperatorTokens, tmp_path: Path) -> None:
    sessions = Sessions(tokens, clock=Clock())
    ada = tokens.authenticate(ADMIN_TOKEN)
    assert ada is not None
    cookie = sessions.open(ada)
    (tmp_path / "operators").write_text(f"admin ada {'n' * 40}\nviewer vera {VIEWER_TOKEN}\n")
    tokens.reload()
    assert sessions.find(cookie) is None


@pytest.mark.parametrize(
    "forge",
    [
        lambda c: c.replace("ada:", "vera:", 1),  # another operator
        lambda c: c.split(":")[0] + ":9999999999:" + c.split(":")[2],  # a later expiry
        lambda c: c[:-1] + ("0" if c[-1] != "0" else "1"),  # another MAC
        lambda c: "nobody:" + c.split(":", 1)[1],  # no such operator
        lambda c: c + ":",  # malformed
        lambda c: "",
    ],
)
def test_a_made_up_cookie_is_no_session(tokens: OperatorTokens, forge: object) -> None:
    sessions = Sessions(tokens, clock=Clock())
    ada = tokens.authenticate(ADMIN_TOKEN)
    assert ada is not None and callable(forge)
    assert sessions.find(forge(sessions.open(ada))) is None


def test_each_session_has_its_own_csrf_token(tokens: OperatorTokens) -> None:
    clock = Clock()
    sessions = Sessions(tokens, clock=clock)
    ada, vera = tokens.authenticate(ADMIN_TOKEN), tokens.authenticate(VIEWER_TOKEN)
    assert ada is not None and vera is not None
    first = sessions.find(sessions.open(ada))
    clock.now += timedelta(seconds=1)
    later = sessions.find(sessions.open(ada))
    other = sessions.find(sessions.open(vera))
    assert first is not None and later is not None and other is not None
    assert len({first.csrf, later.csrf, other.csrf}) == 3
    assert not sessions.csrf_matches(first, later.csrf)
