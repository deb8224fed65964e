"""Component tier: whole ``edgefleet`` commands run in-process over repositories on disk.
Provides ``run_cli``: ``edgefleet ARGS``, its exit code and output."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reconciler.cli import main
from tests.support.commands import CliResult


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    def run(*args: str) -> CliResult:
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse usage errors
            code = int(e.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
