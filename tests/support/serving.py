"""The flags every test's ``edgefleet serve`` process starts with: its files in ``work``."""

from __future__ import annotations

from pathlib import Path


def serve_flags(work: Path, port: int) -> list[str]:
    """Loopback on ``port``, SQLite, and the token, operator and key files in ``work``."""
    return [
        "--listen", f"127.0.0.1:{port}",
        "--db", f"sqlite:///{work / 'reconciler.db'}",
        "--bootstrap-token-file", str(work / "bootstrap"),
        "--operator-token-file", str(work / "operators"),
        "--signing-key", str(work / "signing.pem"),
        "--tick-interval", "0.2",
    ]  # fmt: skip
