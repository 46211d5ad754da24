"""One default run date: the day the schedule is on ([schedule] timezone and cron_expression), the same for
the cron wrapper, every task's `date`, `status`, `preview` and `reconcile`."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest

from tasks import status
from tasks.__main__ import main as cli
from tasks.errors import ConfigError
from tasks.ops.cron import load_schedule, scheduled_date
from tasks.params import default_run_date
from tasks.run_all import RunAll

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 1, 12, 30, tzinfo=UTC)  # 2 March 01:30 in Auckland; 1 March 07:30 in New York


@pytest.mark.parametrize(("zone", "cron", "expected"), [
    ("UTC", "@daily", dt.date(2026, 3, 1)),
    ("Pacific/Auckland", "@daily", dt.date(2026, 3, 2)),  # its business day started 12 hours before UTC's
    ("America/New_York", "@daily", dt.date(2026, 3, 1)),
    ("Pacific/Auckland", "0 6 * * *", dt.date(2026, 3, 1)),  # before the 06:00 tick: still yesterday's run
    ("America/New_York", "0 6 * * *", dt.date(2026, 3, 1)),
])
def test_the_default_is_the_day_the_schedule_is_on(luigi_cfg: Any, zone: str, cron: str, expected: dt.date) -> None:
    luigi_cfg.set("schedule", "timezone", zone).set("schedule", "cron_expression", cron)
    assert default_run_date(NOW) == expected
    assert scheduled_date(load_schedule(), NOW) == expected, "the cron wrapper computes the same date"


@pytest.mark.parametrize(("key", "value", "named"), [
    ("timezone", "Mars/Olympus", "[schedule] timezone 'Mars/Olympus'"),
    ("cron_expression", "every day", "[schedule] cron_expression 'every day'"),
])
def test_a_bad_schedule_is_a_config_error_naming_the_key(luigi_cfg: Any, key: str, value: str, named: str) -> None:
    luigi_cfg.set("schedule", key, value)
    with pytest.raises(ConfigError) as err:
        default_run_date(NOW)
    assert named in str(err.value)


def test_tasks_and_commands_default_to_it(luigi_cfg: Any, capsys: pytest.CaptureFixture[str]) -> None:
    luigi_cfg.set("schedule", "timezone", "Pacific/Kiritimati")  # UTC+14: a day ahead of UTC most of the time
    today = default_run_date()
    assert today == dt.datetime.now(UTC).astimezone(load_schedule().timezone).date()
    assert RunAll().date == today
    assert RunAll(date=dt.date(2026, 1, 2)).date == dt.date(2026, 1, 2), "a given date wins"

    out = io.StringIO()
    status.main(None, 1, out=out)
    assert f"Summary for {today.isoformat()}" in out.getvalue()

    assert cli(["reconcile"]) == 1  # nothing loaded for that day: it says which day it looked at
    assert f"no customers for {today.isoformat()}" in capsys.readouterr().out
