"""Crash points for the crash-safety tests: SIGKILL this process at a named step.

Set TASKS_CRASH_AT=<point> in a subprocess's environment to have it die, with no cleanup,
right after that step. Unset (production), `crash_point` does nothing.
"""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    """Die by SIGKILL here if TASKS_CRASH_AT names this point."""
    if os.environ.get("TASKS_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
