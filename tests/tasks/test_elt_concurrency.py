"""Concurrent runs of one table: real `luigi` processes, interleaved deterministically with pause points
(tasks/faults.py), can only ever publish a build that passed its checks; staged builds of dead runs
are dropped after a while.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import luigi
import pytest

from tasks.elt import steps
from tasks.elt.tasks import MauSummary, PublishTable, StageTable
from tasks.errors import DataValidationError
from tasks.warehouse.client import WarehouseClient
from tests.warehouse_fixtures import expected_mau, published, seed_raw

DAY1 = dt.date(2026, 5, 31)
DAY2 = dt.date(2026, 6, 30)
EARLY = dt.date(2025, 2, 10)  # 2 months instead of 17-18: fails row_count_drop and row_count_anomaly
DAY_BEFORE = dt.date(2026, 6, 29)


def start(env: dict[str, str], cwd: Path, task: str, date: dt.date, pause_at: str | None = None) -> subprocess.Popen:
    env = dict(env)
    if pause_at:
        env.update(TASKS_PAUSE_AT=pause_at, TASKS_PAUSE_DIR=str(cwd), TASKS_PAUSE_TIMEOUT="90")
    return subprocess.Popen(start_args(task, date), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_paused(proc: subprocess.Popen, flag: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not flag.exists():
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before pausing: {proc.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, f"{flag.name} never reached"
        time.sleep(0.05)


def builds(client: WarehouseClient) -> dict[str, tuple]:
    rows = client.execute("SELECT build_id, run_date, status, staging_table, dropped_at IS NOT NULL "
                          "FROM analytics.elt_builds")
    return {r[0]: r[1:] for r in rows}


def stage_marker(client: WarehouseClient, date: dt.date) -> str:
    return client.execute("SELECT build_id FROM analytics.table_updates WHERE update_id = %(u)s",
                          {"u": f"stage:analytics.mau_summary:{date}"})[0][0]


@pytest.mark.slow
def test_runs_in_between_a_check_and_its_publish_cannot_change_what_is_published(
    warehouse: WarehouseClient, tmp_path: Path, subprocess_env: dict[str, str], processes: list[subprocess.Popen]
) -> None:
    """A publishes day 2 and is held after its checks, right before its publish statement. Meanwhile B
    stages a day whose build fails its checks, and C stages another day and is held after its CTAS,
    before any check. A then publishes: its own validated build, nothing of B's or C's."""
    raw = seed_raw(warehouse, tmp_path)
    assert luigi.build([MauSummary(date=DAY1)], local_scheduler=True)
    a = start(subprocess_env, tmp_path, "PublishTable", DAY2, pause_at="before_publish")
    processes.append(a)
    wait_paused(a, tmp_path / "before_publish.paused")
    a_build = stage_marker(warehouse, DAY2)

    b = subprocess.run(start_args("StageTable", EARLY), env=subprocess_env, cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert b.returncode == 30, b.stderr[-3000:]  # [retcode] task_failed
    assert "row_count_drop" in b.stderr
    c = start(subprocess_env, tmp_path, "StageTable", DAY_BEFORE, pause_at="after_ctas")
    processes.append(c)
    wait_paused(c, tmp_path / "after_ctas.paused")

    (tmp_path / "before_publish.resume").touch()
    _, err = a.communicate(timeout=120)
    assert a.returncode == 0, err[-3000:]
    assert published(warehouse) == expected_mau(*raw, DAY2)
    rows = builds(warehouse)
    assert rows[a_build][1] == "published"
    by_status = sorted((run_date, status) for run_date, status, *_ in rows.values())
    assert by_status == [(EARLY, "failed"), (DAY1, "published"), (DAY_BEFORE, "staging"), (DAY2, "published")]
    # the failed and the unchecked builds are still in their own tables, untouched by A's publish
    for run_date, status, staging, dropped in rows.values():
        assert steps.table_exists(warehouse, staging) and not dropped, (run_date, status)

    (tmp_path / "after_ctas.resume").touch()
    _, err = c.communicate(timeout=120)
    assert c.returncode == 0, err[-3000:]
    c_build = stage_marker(warehouse, DAY_BEFORE)
    assert builds(warehouse)[c_build][1] == "validated"
    assert published(warehouse) == expected_mau(*raw, DAY2)


def start_args(task: str, date: dt.date) -> list[str]:
    # --no-lock: Luigi would otherwise refuse a second process with the same command line
    return [sys.executable, "-m", "luigi", "--module", "tasks", task, "--table", "analytics.mau_summary",
            "--date", str(date), "--local-scheduler", "--no-lock"]


@pytest.fixture
def processes() -> list[subprocess.Popen]:
    """Processes a test started; any still running at the end (a failed test) are killed."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_staged_builds_are_dropped_when_superseded_or_stale(warehouse: WarehouseClient, tmp_path: Path) -> None:
    raw = seed_raw(warehouse, tmp_path)
    day3 = dt.date(2026, 7, 1)
    assert luigi.build([MauSummary(date=DAY1)], local_scheduler=True)
    with pytest.raises(DataValidationError):
        StageTable(date=EARLY, table="analytics.mau_summary").run()
    assert luigi.build([MauSummary(date=DAY2)], local_scheduler=True)
    rows = builds(warehouse)
    assert not any(dropped for *_, dropped in rows.values())  # 2 published builds kept; the failed one is young

    warehouse.execute("UPDATE analytics.elt_builds SET created_at = DATEADD(hour, -25, created_at) "
                      "WHERE status = 'failed'")
    PublishTable(date=day3, table="analytics.mau_summary").requires().run()
    PublishTable(date=day3, table="analytics.mau_summary").run()
    assert published(warehouse) == expected_mau(*raw, day3)
    rows = builds(warehouse)
    kept = {run_date: (status, dropped) for run_date, status, _, dropped in rows.values()}
    assert kept == {
        DAY1: ("published", True),  # published before the last two: gone
        EARLY: ("failed", True),  # never published and older than stale_build_hours (24)
        DAY2: ("published", False),  # the rollback copy
        day3: ("published", False),  # the published build
    }
    for run_date, _, staging, dropped in rows.values():
        assert steps.table_exists(warehouse, staging) is not dropped, run_date
