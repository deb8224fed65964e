"""Operator tokens the tests serve with: a viewer and an admin, as a file or as tokens."""

from __future__ import annotations

from pathlib import Path

from reconciler.api.operators import OperatorTokens

VIEWER_TOKEN = "viewer-token-for-tests-0123456789abcdef"
ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def operator_tokens() -> OperatorTokens:
    return OperatorTokens.of(("viewer", "vera", VIEWER_TOKEN), ("admin", "ada", ADMIN_TOKEN))


def write_token_file(path: Path) -> Path:
    path.write_text(f"# ROLE NAME TOKEN\nviewer vera {VIEWER_TOKEN}\nadmin ada {ADMIN_TOKEN}\n")
    path.chmod(0o600)
    return path
