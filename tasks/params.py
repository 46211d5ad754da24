"""Shared Luigi parameters, and the one definition of the default run date.

Reads [schedule] (cron_expression, timezone) for the default run date.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import luigi

from tasks import config
from tasks.errors import ConfigError
from tasks.luigi_internals import LateDefaultParameter


def run_date_at(cron_expression: str, timezone: dt.tzinfo, now: dt.datetime) -> dt.date:
    """The date, in `timezone`, of the latest tick of `cron_expression` at or before `now` (aware)."""
    from croniter import croniter  # only when a date is defaulted: the operator's commands start faster

    local = now.astimezone(timezone)
    # croniter's get_prev is strictly before its start: one second later makes "at" count
    start = local.replace(microsecond=0) + dt.timedelta(seconds=1)
    return croniter(cron_expression, start).get_prev(dt.datetime).date()


def default_run_date(now: dt.datetime | None = None) -> dt.date:
    """The run date every command and task uses when none is given: the day the schedule is on.

    That is the date, in `[schedule] timezone`, of the latest tick of `[schedule] cron_expression` at
    or before now: exactly the date the cron wrapper runs at this moment. With the default `@daily`
    it is today's date in that zone. Why this clock: the run date is a business date, and the
    business says when its day starts in `[schedule] timezone`, not the machine's local zone (a
    server in another zone, or a container on UTC, would otherwise run, preview or show a day the
    schedule is not on), and not UTC as such (in Auckland the business day starts 12 or 13 hours
    earlier). Taking the schedule's own rule rather than the bare calendar date keeps a manual run,
    `status` and `preview` on the day cron last ran (with a tick at 06:00, between midnight and
    06:00 that is still yesterday). Computed at each call, never at import: a long-lived worker or
    scheduler would otherwise keep its start day. ConfigError names a bad cron_expression or timezone.
    """
    cfg = config.ScheduleConfig()
    try:
        zone = ZoneInfo(cfg.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[schedule] timezone {cfg.timezone!r} is not an IANA time zone") from None
    try:
        return run_date_at(cfg.cron_expression, zone, now or dt.datetime.now(dt.UTC))
    except (ValueError, KeyError) as exc:  # croniter's CroniterBadCronError is a ValueError
        raise ConfigError(f"[schedule] cron_expression {cfg.cron_expression!r} is not a cron expression or "
                          f"macro: {exc}") from None


class RunDateParameter(LateDefaultParameter[dt.date], luigi.DateParameter):
    """The run date; defaults to `default_run_date()` when the task is built, not when the module was
    imported (a long-lived worker or scheduler process would otherwise keep the import day forever).
    Every task of the package takes its `date` this way."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "description", "Business date (YYYY-MM-DD) the task builds or sends for; default: the day the "
            "schedule is on ([schedule] timezone and cron_expression, as the cron wrapper computes it).",
        )
        super().__init__(**kwargs)

    def late_default(self) -> dt.date:
        return default_run_date()
