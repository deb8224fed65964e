"""Run a module as ``python -m`` would and write, as it exits, the peak resident memory of
this process since it started the interpreter (``VmHWM``: the fork this process came from is
not counted, as it is in ``ru_maxrss``)::

    python -m tests.support.peak OUT_FILE MODULE [ARGS...]
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    out, module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        Path(out).write_text(str(peak_kib()))


if __name__ == "__main__":
    main()
