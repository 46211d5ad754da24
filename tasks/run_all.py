"""RunAll: everything for one day, the ELT tables, the three campaign sends and their results in the warehouse,
and the delivery events the providers reported since the previous export.

Reads [schedule] depends_on_past and start_date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

import luigi

from tasks import config
from tasks.campaign.tasks import (
    SEND_TASKS,
    ExportCampaignEvents,
    ExportSegmentLoad,
    ExportSendResults,
)
from tasks.elt.tasks import BuildAllTables, full_refresh_parameter
from tasks.params import RunDateParameter


class RunAll(luigi.Task):
    """Every pipeline for `date`: complete when every table is published and every send is done.

    Normally a wrapper: it requires the day's work. With `[schedule] depends_on_past = true`
    it requires RunAll(date - 1 day) instead (not before `start_date`) and yields the day's
    work from run() as dynamic dependencies, so none of the day's tasks starts before the
    previous day is complete, which is what depends_on_past promises. (Requiring the previous
    RunAll beside the day's work would only order the wrappers: the day's first tasks would
    start at once with the previous day's.) Without depends_on_past the ELT lets days run at
    once (every build stages into its own table; an older day's build never replaces a newer
    published one), but two days' sends of one channel in two processes would each take the
    provider's whole rate unless the bucket is shared (`[state] backend = postgres`, or a sharded
    send): the cron wrapper's catch-up runs one day after another for that. Completeness looks at
    the day's own work only, so checking it never walks the chain back to `start_date`.
    """

    date = RunDateParameter()
    full_refresh = full_refresh_parameter()

    def day_requires(self) -> list[luigi.Task]:
        """This day's own work: the tables, the three sends and their exports to the warehouse (each
        export requires its send or LoadSegments, so a warehouse outage never undoes a send)."""
        return [
            BuildAllTables(date=self.date, full_refresh=self.full_refresh),
            *(task(date=self.date) for task in SEND_TASKS.values()),
            ExportSegmentLoad(date=self.date),
            *(ExportSendResults(date=self.date, channel=channel) for channel in SEND_TASKS),
            ExportCampaignEvents(date=self.date),
        ]

    def previous_day(self) -> RunAll | None:
        """RunAll of the day before when depends_on_past is on and that day is not before start_date."""
        cfg = config.ScheduleConfig()
        previous = self.date - dt.timedelta(days=1)
        return RunAll(date=previous) if cfg.depends_on_past and previous >= cfg.start_date else None

    def requires(self) -> list[luigi.Task]:
        previous = self.previous_day()
        return [previous] if previous is not None else self.day_requires()

    def run(self) -> Iterator[list[luigi.Task]]:
        yield self.day_requires()  # already complete without depends_on_past: Luigi goes straight on

    def complete(self) -> bool:
        return all(task.complete() for task in self.day_requires())

    @classmethod
    def bulk_complete(cls, parameter_tuples: Iterable[object]) -> list[dt.date]:
        """RangeDaily's completeness check: the days whose tables are all published (one marker-table query,
        BuildAllTables.bulk_complete); of those, the days whose sends and exports are done too."""
        tables_done = BuildAllTables.bulk_complete(parameter_tuples)
        return [d for d in tables_done if all(task.complete() for task in cls(date=d).day_requires()[1:])]
