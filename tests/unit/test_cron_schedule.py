"""The cron wrapper's pure parts: run date in a time zone, window, catch-up days, exit codes, config errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tasks.errors import ConfigError
from tasks.ops.cron import EXIT_TIMEOUT, Outcome, days_to_run, describe_code, exit_code, load_schedule, outside_window
from tasks.ops.cron import scheduled_date as run_date

UTC = dt.UTC


def test_run_date_is_the_latest_tick_in_the_configured_time_zone(luigi_cfg) -> None:
    luigi_cfg.set("schedule", "timezone", "Pacific/Auckland")
    sched = load_schedule()
    now = dt.datetime(2026, 3, 1, 12, 30, tzinfo=UTC)  # already 2 March (01:30) in Auckland
    assert run_date(sched, now) == dt.date(2026, 3, 2)
    assert run_date(dataclasses.replace(sched, timezone=ZoneInfo("UTC")), now) == dt.date(2026, 3, 1)
    # a tick at 06:00 local: before it, the latest tick was yesterday's
    at_six = dataclasses.replace(sched, cron_expression="0 6 * * *")
    assert run_date(at_six, now) == dt.date(2026, 3, 1)
    assert run_date(at_six, dt.datetime(2026, 3, 1, 17, 0, tzinfo=UTC)) == dt.date(2026, 3, 2)  # 06:00 exactly


def test_window(luigi_cfg) -> None:
    luigi_cfg.set("schedule", "start_date", "2026-01-01").set("schedule", "end_date", "2026-01-31")
    sched = load_schedule()
    assert outside_window(sched, dt.date(2026, 1, 1)) is None and outside_window(sched, dt.date(2026, 1, 31)) is None
    assert "start_date" in outside_window(sched, dt.date(2025, 12, 31))
    assert "end_date" in outside_window(sched, dt.date(2026, 2, 1))


@pytest.mark.parametrize(
    ("complete_days", "max_days", "expected"),
    [
        ({5}, 30, [6, 7, 8, 9, 10]),  # every day after the last complete one
        ({2, 8}, 30, [9, 10]),  # an older gap is not a missed day
        ({10}, 30, [10]),  # nothing missed: the run date itself (a no-op run)
        (set(), 3, [8, 9, 10]),  # bounded by max_catchup_days
        (set(), 30, [3, 4, 5, 6, 7, 8, 9, 10]),  # bounded by start_date (the 3rd)
    ],
)
def test_catchup_days(luigi_cfg, complete_days, max_days, expected) -> None:
    luigi_cfg.set("schedule", "catchup", "true").set("schedule", "start_date", "2026-03-03")
    luigi_cfg.set("schedule", "max_catchup_days", max_days)
    days = days_to_run(load_schedule(), dt.date(2026, 3, 10), lambda d: d.day in complete_days)
    assert days == [dt.date(2026, 3, n) for n in expected]


def test_without_catchup_only_the_run_date(luigi_cfg) -> None:
    assert days_to_run(load_schedule(), dt.date(2026, 3, 10), lambda d: False) == [dt.date(2026, 3, 10)]


def test_exit_codes() -> None:
    assert exit_code(Outcome(30)) == 30 and describe_code(30) == "task_failed"
    assert exit_code(Outcome(-9)) == 137 and describe_code(137) == "killed_by_SIGKILL"
    assert exit_code(Outcome(-15, timed_out=True)) == EXIT_TIMEOUT == 124 and describe_code(124) == "timeout"
    assert describe_code(10) == "already_running" and describe_code(0) == "ok"


@pytest.mark.parametrize(
    ("key", "value"),
    [("cron_expression", "every day"), ("timezone", "Mars/Olympus"), ("end_date", "tomorrow"),
     ("max_active_runs", "0"), ("start_date", "2025-13-45"), ("workers", "three")],
)
def test_invalid_schedule(luigi_cfg, key, value) -> None:
    luigi_cfg.set("schedule", key, value)
    with pytest.raises(ConfigError, match=key):
        load_schedule()
