"""Which days of a range a send has finished, in one look: Luigi's `bulk_complete` for RangeDaily backfills.

`luigi --module tasks RangeDaily --of SendEmailCampaign --start D --stop D2` asks the send class for the
complete days of the whole range at once. Luigi cannot infer it from file names (with Postgres state the
target is a marker row, not a file), so this answers it: with local state each day's result file exists or
not (a stat per day, no query); with shared state one query reads the markers of the range (the state
backend's targets answer: tasks/state/targets.py `existing`). Reads the
send's own sections through the task instances; no section of its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import luigi

from tasks.state.targets import existing


def completed_days(make: Callable[..., luigi.Task], parameter_tuples: Iterable[object]) -> list[dt.date]:
    """The run dates among `parameter_tuples` (RangeDaily passes dates) whose task `make(date=d)` (the task class,
    or a functools.partial of it with RangeDaily's --of-params) has its output."""
    dates = [as_date(p) for p in parameter_tuples]
    done = existing([make(date=d).output() for d in dates])
    return [d for d, finished in zip(dates, done, strict=True) if finished]


def as_date(value: object) -> dt.date:
    """A RangeDaily parameter (a date; a datetime or ISO text accepted too) as a date."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))
