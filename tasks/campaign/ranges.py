"""Which days of a range a send has finished, in one look: Luigi's `bulk_complete` for RangeDaily backfills.

`luigi --module tasks RangeDaily --of SendEmailCampaign --start D --stop D2` asks the send class for the
complete days of the whole range at once. Luigi cannot infer it from file names (with Postgres state the
target is a marker row, not a file), so this answers it: with local state each day's result file exists or
not (a stat per day, no query); with shared state one query reads the markers of the range. Reads the
send's own sections through the task instances; no section of its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import luigi

from tasks.state.db import read_sql
from tasks.state.markers import SQL_DIR, MarkerTarget


def completed_days(make: Callable[..., luigi.Task], parameter_tuples: Iterable[object]) -> list[dt.date]:
    """The run dates among `parameter_tuples` (RangeDaily passes dates) whose task `make(date=d)` (the task class,
    or a functools.partial of it with RangeDaily's --of-params) has its output."""
    dates = [as_date(p) for p in parameter_tuples]
    outputs = {d: make(date=d).output() for d in dates}
    markers = {d: o for d, o in outputs.items() if isinstance(o, MarkerTarget)}
    done = {d for d, o in outputs.items() if not isinstance(o, MarkerTarget) and o.exists()}
    if markers:
        done |= {d for d, o in markers.items() if o.marker_id in _marker_ids(list(markers.values()))}
    return [d for d in dates if d in done]


def _marker_ids(targets: list[MarkerTarget]) -> set[str]:
    """The marker ids present among `targets` (one database), from one range query."""
    ids = sorted(t.marker_id for t in targets)
    first = targets[0]
    first.exists()  # creates the marker table if absent, as every marker lookup does
    with first.db.transaction() as tx:
        rows = tx.rows(read_sql(SQL_DIR, "between", first.db.dialect), {"low": ids[0], "high": ids[-1]})
    return {str(r[0]) for r in rows}


def as_date(value: object) -> dt.date:
    """A RangeDaily parameter (a date; a datetime or ISO text accepted too) as a date."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))
