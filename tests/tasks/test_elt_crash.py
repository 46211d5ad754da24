"""Crash safety of stage -> check -> publish -> mark: a real luigi subprocess SIGKILLed at each point.

Day 1 publishes an old version; new raw rows arrive; day 2's run is killed at a crash point.
The published table must then be the old or the new validated version, and the next run
must converge to the new one without ever putting the old one back. Day 2 builds MAU both ways:
incremental (the shipped spec: a clone of the published table, its last two months rebuilt) and
full (the same spec without [table.incremental]).
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
from pathlib import Path

import luigi
import pyarrow as pa
import pytest

from tasks.elt.tasks import MauSummary
from tasks.warehouse.client import WarehouseClient
from tests.warehouse_fixtures import expected_mau, published, seed_raw

DAY1 = dt.date(2026, 5, 31)
DAY2 = dt.date(2026, 6, 30)
SHIPPED = Path(__file__).resolve().parents[2] / "config"
CRASH_POINTS = [
    ("after_ctas", "old"),
    ("after_validation", "old"),
    ("after_stage_marker", "old"),
    ("before_publish", "old"),
    ("mid_publish", "new"),
    ("after_publish", "new"),
]


def use_mode(mode: str, tmp_path: Path, luigi_cfg) -> None:
    """The shipped MAU spec, incremental as shipped or without its [table.incremental] part (full)."""
    text = (SHIPPED / "tables.toml").read_text()
    mau = text.split("\n[[table]]\n")[1]
    if mode == "full":
        mau = mau.split("[table.incremental]")[0]
    assert 'name = "analytics.mau_summary"' in mau
    (tmp_path / "tables.toml").write_text("[[table]]\n" + mau.replace('"sql/', f'"{SHIPPED}/sql/'))
    luigi_cfg.set("elt", "table_specs", tmp_path / "tables.toml")


def run_luigi(env: dict[str, str], cwd: Path, crash_at: str | None) -> subprocess.CompletedProcess:
    env = dict(env)
    if crash_at:
        env["TASKS_CRASH_AT"] = crash_at
    cmd = [sys.executable, "-m", "luigi", "--module", "tasks", "MauSummary", "--date", str(DAY2), "--local-scheduler"]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def stage_build_id(client: WarehouseClient) -> str | None:
    rows = client.execute(
        "SELECT build_id FROM analytics.table_updates WHERE update_id = %(u)s",
        {"u": f"stage:analytics.mau_summary:{DAY2}"},
    )
    return rows[0][0] if rows else None


def last_published_build(client: WarehouseClient) -> str:
    """The build the builds table says was published last (what the published table holds)."""
    return client.execute("SELECT build_id FROM analytics.elt_builds WHERE status = 'published' "
                          "ORDER BY published_at DESC LIMIT 1")[0][0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "crash_at", "published_after_crash"),
    [*(("full", *point) for point in CRASH_POINTS),
     *(("incremental", *point) for point in CRASH_POINTS),
     ("incremental", "after_clone", "old")],  # the clone made, its partitions not yet rebuilt
)
def test_crash_then_rerun_converges(
    warehouse: WarehouseClient, tmp_path: Path, subprocess_env, luigi_cfg, mode: str, crash_at: str,
    published_after_crash: str,
) -> None:
    use_mode(mode, tmp_path, luigi_cfg)
    raw = seed_raw(warehouse, tmp_path)
    assert luigi.build([MauSummary(date=DAY1)], local_scheduler=True)
    old = published(warehouse)
    assert old == expected_mau(*raw, DAY1)
    new = expected_mau(*raw, DAY2)
    assert new != old  # day 2 adds June 2026

    crashed = run_luigi(subprocess_env, tmp_path, crash_at)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    after_crash = published(warehouse)
    assert after_crash == (old if published_after_crash == "old" else new)
    build_after_crash = stage_build_id(warehouse)

    rerun = run_luigi(subprocess_env, tmp_path, None)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert published(warehouse) == new
    final_build = stage_build_id(warehouse)
    assert last_published_build(warehouse) == final_build
    modes = [m for (m,) in warehouse.execute("SELECT mode FROM analytics.elt_builds WHERE run_date = %(d)s",
                                             {"d": DAY2})]
    assert set(modes) == {mode}, "day 2 builds the way the spec says, after a crash too"
    if crash_at not in ("after_clone", "after_ctas", "after_validation"):
        # the validated build of the crashed run is the one published: nothing rebuilt, nothing put back
        assert final_build == build_after_crash
    # a third run changes nothing
    third = run_luigi(subprocess_env, tmp_path, None)
    assert third.returncode == 0
    assert published(warehouse) == new and stage_build_id(warehouse) == final_build
    assert last_published_build(warehouse) == final_build


def test_new_raw_rows_change_the_result(warehouse: WarehouseClient, tmp_path: Path) -> None:
    """Guard for the crash test's premise: day 2 sees a month day 1 does not."""
    sessions, channels = seed_raw(warehouse, tmp_path)
    assert isinstance(sessions, pa.Table)
    assert set(expected_mau(sessions, channels, DAY2)) - set(expected_mau(sessions, channels, DAY1)) == {"2026-06"}
