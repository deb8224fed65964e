"""Tokens the reconciler hands out (agent and one-time enrolment tokens)."""

from __future__ import annotations

import pytest

from reconciler.delivery import registrations


def test_a_token_never_begins_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-time token is passed on a command line (edge-installer --registration-token
    TOKEN): one beginning with "-" would read as an option, so it is drawn again."""
    drawn = iter(["-starts-like-an-option", "_fine-token"])
    monkeypatch.setattr(registrations.secrets, "token_urlsafe", lambda _n: next(drawn))
    assert registrations.new_token() == "_fine-token"


def test_tokens_are_long_and_url_safe() -> None:
    tokens = {registrations.new_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(len(t) == 43 and not t.startswith("-") for t in tokens)
    assert all(
        set(t) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for t in tokens
    )
