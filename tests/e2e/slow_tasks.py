"""Test-only Luigi module for the cron wrapper: a day task that takes as long as it is told.

The wrapper runs it with `[schedule] module = tests.e2e.slow_tasks` and `task = SlowDay`
(the repo root is on PYTHONPATH in the tests' subprocesses). `[SlowDay] seconds` sets how long
it sleeps. It writes <var_dir>/slow/<date>.started (with its pid) when it begins and
<date>.done, its target, when it ends.
"""

from __future__ import annotations

import os
import time

import luigi

import tasks  # noqa: F401  the alert handlers, as with `--module tasks`
from tasks import config


class SlowDay(luigi.Task):
    """Sleep `seconds`, then mark the day done."""

    date = luigi.DateParameter()
    seconds = luigi.FloatParameter(default=0.0, significant=False)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(config.var_dir() / "slow" / f"{self.date}.done"))

    def run(self) -> None:
        started = config.var_dir() / "slow" / f"{self.date}.started"
        started.parent.mkdir(parents=True, exist_ok=True)
        started.write_text(f"{os.getpid()}\n")
        time.sleep(self.seconds)
        with self.output().open("w") as fh:
            fh.write("done\n")
