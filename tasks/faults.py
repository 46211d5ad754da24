"""Fault points for the crash-safety and concurrency tests: die or wait at a named step.

- TASKS_CRASH_AT=<point>: the process dies by SIGKILL, with no cleanup, right after that step.
- TASKS_PAUSE_AT=<point> and TASKS_PAUSE_DIR=<dir>: at that step the process creates
  `<dir>/<point>.paused` and waits until `<dir>/<point>.resume` exists, so a test can run another
  process in between (a deterministic interleaving of two real processes). It gives up with
  `FaultPointTimeoutError` after TASKS_PAUSE_TIMEOUT seconds (default 120).

Unset (production), `fault_point` does nothing.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


class FaultPointTimeoutError(RuntimeError):
    """Raised when a paused process was not resumed in time (a test harness bug, never production)."""


def fault_point(name: str) -> None:
    """Die by SIGKILL here if TASKS_CRASH_AT names this point; wait here if TASKS_PAUSE_AT does."""
    if os.environ.get("TASKS_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("TASKS_PAUSE_AT") == name:
        _pause(name, Path(os.environ["TASKS_PAUSE_DIR"]), float(os.environ.get("TASKS_PAUSE_TIMEOUT", "120")))


def _pause(name: str, directory: Path, timeout: float) -> None:
    (directory / f"{name}.paused").write_text(str(os.getpid()))
    resume = directory / f"{name}.resume"
    deadline = time.monotonic() + timeout
    while not resume.exists():
        if time.monotonic() > deadline:
            raise FaultPointTimeoutError(f"paused at {name} for {timeout:.0f}s and never resumed")
        time.sleep(0.02)
