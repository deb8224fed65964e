"""Talking to a running reconciler as an operator: ``--server``, ``--token-file`` (or
``EDGEFLEET_TOKEN``) and ``--cacert``, shared by ``status`` and ``rollout``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8080"


class ClientError(Exception):
    """The server could not be asked or refused; the message is one line."""


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=os.environ.get("EDGEFLEET_SERVER", DEFAULT_SERVER),
        help=f"reconciler URL (default: $EDGEFLEET_SERVER or {DEFAULT_SERVER})",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help="file holding an operator token (default: $EDGEFLEET_TOKEN)",
    )
    parser.add_argument("--cacert", type=Path, help="CA certificate (PEM) to trust for HTTPS")


def call(
    args: argparse.Namespace, method: str, path: str, *, body: dict[str, Any] | None = None
) -> httpx.Response:
    """The server's answer (status 200); raises ClientError with a one-line reason."""
    headers = {"Authorization": f"Bearer {_token(args)}"}
    verify: Any = True
    if args.cacert is not None:
        if not args.cacert.is_file():
            raise ClientError(f"--cacert {args.cacert}: no such file")
        verify = httpx.create_ssl_context(verify=str(args.cacert))
    url = str(args.server).rstrip("/") + path
    try:
        answer = httpx.request(method, url, headers=headers, json=body, timeout=15, verify=verify)
    except httpx.HTTPError as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ClientError(
            f"cannot reach the reconciler at {args.server} ({reason}); "
            "set --server or EDGEFLEET_SERVER"
        ) from None
    if answer.status_code != 200:
        raise ClientError(f"{args.server} answered {answer.status_code}: {_detail(answer)}")
    return answer


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            token = str(args.token_file.read_text()).strip()
        except OSError as e:
            raise ClientError(f"--token-file {args.token_file}: {e.strerror}") from None
        if not token:
            raise ClientError(f"--token-file {args.token_file} is empty")
        return token
    token = os.environ.get("EDGEFLEET_TOKEN", "").strip()
    if not token:
        raise ClientError("an operator token is needed: --token-file FILE or EDGEFLEET_TOKEN")
    return token


def _detail(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail", "")
    except ValueError:
        detail = answer.text
    return str(detail)[:200]
