"""Full or incremental: what a table's build rebuilds, decided from its spec and the published table (pure).

An incremental spec (`[table.incremental]` key, grain, lookback) rebuilds whole partitions: the
run date's own and `lookback` before it. Its SELECT reads its sources from `%(window_start)s`
on, the first day of the oldest rebuilt partition; the build clones the published table, deletes
every partition from that one on (the run date bounds what the SELECT inserts back, so the result
is the full build's for that run date) and inserts the SELECT's rows. A build is full when the
table was never published, when the published table's columns differ from the SELECT's, or when
forced (`--full-refresh`); a full build binds FULL_WINDOW_START, the earliest date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from tasks.elt.specs import Incremental

FULL, INCREMENTAL = "full", "incremental"
FULL_WINDOW_START = dt.date(1900, 1, 1)

Columns = Sequence[tuple[str, object]]  # (name, type code) as the connector describes a result


@dataclass(frozen=True)
class BuildPlan:
    """What one build does: `mode`, the `window_start` its SELECT reads from (None: the spec is not
    incremental, nothing to bind), the first partition key it deletes, and why."""

    mode: str
    window_start: dt.date | None
    first_partition: str | None = None
    reason: str = ""
    columns: tuple[str, ...] = ()  # incremental: the columns the SELECT's rows are inserted into, in order

    def bind(self) -> dict[str, str]:
        """The SELECT's window parameter: the window's first day, or the earliest date for a full build."""
        return {"window_start": (self.window_start or FULL_WINDOW_START).isoformat()}


def partition_start(day: dt.date, grain: str, back: int = 0) -> dt.date:
    """The first day of the partition `back` partitions before the one holding `day`."""
    if grain == "day":
        return day - dt.timedelta(days=back)
    months = day.year * 12 + day.month - 1 - back
    return dt.date(months // 12, months % 12 + 1, 1)


def partition_key(day: dt.date, grain: str) -> str:
    """The key value of `day`'s partition: YYYY-MM-DD (day) or YYYY-MM (month); ordered like the days."""
    return day.isoformat() if grain == "day" else day.strftime("%Y-%m")


def window_start(run_date: dt.date, inc: Incremental) -> dt.date:
    """The first day of the oldest partition an incremental build of `run_date` rebuilds."""
    return partition_start(run_date, inc.grain, inc.lookback)


def decide(
    inc: Incremental | None, run_date: dt.date, *, full_refresh: bool, published: Columns | None, selected: Columns,
) -> BuildPlan:
    """The build plan of a table: `published` is the published table's columns (None: never published),
    `selected` the SELECT's."""
    if inc is None:
        return BuildPlan(FULL, None, reason="not incremental")
    full_start = FULL_WINDOW_START
    if full_refresh:
        return BuildPlan(FULL, full_start, reason="forced with --full-refresh")
    if published is None:
        return BuildPlan(FULL, full_start, reason="never published")
    if _shape(published) != _shape(selected):
        return BuildPlan(FULL, full_start, reason=f"the published table's columns {_names(published)} differ from "
                                                  f"the SELECT's {_names(selected)}")
    start = window_start(run_date, inc)
    return BuildPlan(INCREMENTAL, start, partition_key(start, inc.grain),
                     reason=f"partitions from {partition_key(start, inc.grain)} on", columns=tuple(_names(selected)))


def _shape(columns: Columns) -> list[tuple[str, object]]:
    return [(name.lower(), type_code) for name, type_code in columns]


def _names(columns: Columns) -> list[str]:
    return [name.lower() for name, _ in columns]
