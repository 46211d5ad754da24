"""Test-only Luigi tasks that fail in every way an alert must cover.

Run in a subprocess with `luigi --module tests.fakes.failing_tasks <Task> --local-scheduler`
(the repo root is on PYTHONPATH there), or with luigi.build in the test process. Importing
this module imports `tasks`, which registers the alert handlers as in production.
"""

from __future__ import annotations

import os
import signal
import time

import luigi

import tasks  # noqa: F401  registers the failure handlers, as `luigi --module tasks` does


class _NeverComplete(luigi.Task):
    """Base: no output, never complete (so it always runs), no Luigi warning about outputs."""

    def complete(self) -> bool:
        return False


class RaisesError(_NeverComplete):
    """run() raises RuntimeError(message); `message` is not significant, `name` is."""

    name = luigi.Parameter(default="one")
    message = luigi.Parameter(default="boom", significant=False)

    def run(self) -> None:
        raise RuntimeError(self.message)


class RaisesWithSecrets(_NeverComplete):
    """run() raises with the env's API key, a connection string, an e-mail and a phone in the text."""

    def run(self) -> None:
        key = os.environ.get("SENDGRID_API_KEY", "")
        raise RuntimeError(
            f"send failed with key {key} for alice.smith@example.com (+1 202-555-0143); "
            f"dsn postgresql://etl:hunter2pass@db.internal:5432/mau, header Authorization: Bearer {key}"
        )


class ManyFailures(luigi.WrapperTask):
    """Requires `count` independent RaisesError tasks: one run with many failures."""

    count = luigi.IntParameter(default=4)

    def requires(self):
        return [RaisesError(name=f"t{i}") for i in range(self.count)]


class KillsItself(_NeverComplete):
    """SIGKILLs its own process, as the OOM killer would."""

    def run(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class SleepsPastTimeout(_NeverComplete):
    """Sleeps far beyond its worker_timeout of 1 s: Luigi terminates it and fires TIMEOUT."""

    worker_timeout = 1

    def run(self) -> None:
        time.sleep(60)


class BrokenRequires(_NeverComplete):
    """requires() raises: Luigi fires BROKEN_TASK while scheduling."""

    def requires(self):
        raise ValueError("requires() exploded for alice@example.com")

    def run(self) -> None:
        pass


class BrokenComplete(luigi.Task):
    """complete() raises: Luigi fires DEPENDENCY_MISSING (no exception) while scheduling."""

    def complete(self) -> bool:
        raise ConnectionError("warehouse unreachable while checking the marker")

    def run(self) -> None:
        pass


class AlwaysFailsRetried(RaisesError):  # noqa: N818 - a Luigi task (its family is the name tests run), no exception
    """Fails on every attempt; Luigi retries it (needs [worker] keep_alive and a short retry_delay)."""

    retry_count = 3


class FailsValidation(_NeverComplete):
    """run() raises DataValidationError as the MAU validation step does, with two failed checks."""

    date = luigi.DateParameter()

    def run(self) -> None:
        from tasks.errors import CheckFailure, DataValidationError

        raise DataValidationError(
            "analytics.mau_summary staging",
            [CheckFailure("non_empty", "0 rows"), CheckFailure("row_drop", "120 rows < 50% of 1000 published")],
        )
