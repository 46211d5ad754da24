"""[schedule] depends_on_past: a day's tasks wait for the previous day's RunAll, never before start_date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tasks.campaign.tasks import LoadSegments
from tasks.elt.tasks import BuildAllTables
from tasks.run_all import RunAll
from tests.e2e.conftest import run_cron, runs

D1 = dt.date(2026, 3, 2)
D2 = D1 + dt.timedelta(days=1)

pytestmark = pytest.mark.slow  # real subprocesses: luigi runs, the wrapper, luigid


def test_requires_the_previous_day_only_when_on_and_not_before_start_date(luigi_cfg) -> None:
    luigi_cfg.set("schedule", "start_date", str(D1))
    assert BuildAllTables(date=D2) in RunAll(date=D2).requires()
    assert RunAll(date=D1) not in RunAll(date=D2).requires()
    luigi_cfg.set("schedule", "depends_on_past", "true")
    assert RunAll(date=D2).requires() == [RunAll(date=D1)]
    assert BuildAllTables(date=D1) in RunAll(date=D1).requires()  # start_date: no day before it


def test_a_day_runs_after_the_missing_previous_day(small_day, luigi_cfg, subprocess_env, var_path: Path) -> None:
    luigi_cfg.set("schedule", "start_date", str(D1)).set("schedule", "depends_on_past", "true")
    result = run_cron(subprocess_env, "--date", str(D2))
    assert result.returncode == 0, result.stdout[-3000:]
    assert RunAll(date=D1).complete() and RunAll(date=D2).complete()
    assert runs(var_path)[-1]["dates"] == [str(D2)]  # one luigi run did both days
    # D2's first task started only once D1 was complete: its output is newer than all of D1's
    d1_outputs = [p.stat().st_mtime for p in (var_path / "campaigns" / str(D1)).rglob("*.json")]
    assert len(d1_outputs) == 3
    d2_segments = Path(LoadSegments(date=D2).output().path).stat().st_mtime
    assert d2_segments >= max(d1_outputs)
