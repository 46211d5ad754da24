"""`python -m bench.peak FILE -m MODULE ARGS...` (or `-c CODE ARGS...`): run it, then write its own peak RSS.

The fallback of bench.common.PeakRss where GNU /usr/bin/time is missing. The module or code
runs in this very process (as `python -m` / `python -c` would run it), and at exit the
process writes its VmHWM from /proc/self/status, in KiB, to FILE. This process was exec'd
fresh, so VmHWM counts its own pages, never the harness's (unlike ru_maxrss, which keeps the
peak of the process it was forked from).
"""

from __future__ import annotations

import atexit
import runpy
import sys
from pathlib import Path


def vmhwm_kib() -> int:
    """This process's peak resident set size (VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _write(path: str) -> None:
    Path(path).write_text(f"{vmhwm_kib()}\n")


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] not in ("-m", "-c"):
        raise SystemExit("usage: python -m bench.peak FILE (-m MODULE | -c CODE) [ARGS...]")
    path, mode, target, rest = argv[0], argv[1], argv[2], argv[3:]
    atexit.register(_write, path)  # registered first, so it runs last: after the command's own exit handlers
    if mode == "-m":
        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = ["-c", *rest]
        exec(compile(target, "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})


if __name__ == "__main__":
    main(sys.argv[1:])
