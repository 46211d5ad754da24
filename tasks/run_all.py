"""RunAll: everything for one day, the ELT tables and the three campaign sends.

Reads [schedule] depends_on_past and start_date.
"""

from __future__ import annotations

import datetime as dt

import luigi

from tasks import config
from tasks.campaigns import SendEmailCampaign, SendPushNotification, SendSmsCampaign
from tasks.elt import BuildAllTables
from tasks.params import RunDateParameter


class RunAll(luigi.WrapperTask):
    """Every pipeline for `date`: complete when every table is published and every send is done.

    With `[schedule] depends_on_past = true` it also requires RunAll(date - 1 day) (never before
    `start_date`), so a day runs only after the previous one completed. Completeness looks at
    the day's own work only, so checking it never walks the chain back to `start_date`.
    """

    date = RunDateParameter()

    def day_requires(self) -> list[luigi.Task]:
        """This day's own work: the tables, then the sends (all independent of each other)."""
        return [
            BuildAllTables(date=self.date),
            SendEmailCampaign(date=self.date),
            SendSmsCampaign(date=self.date),
            SendPushNotification(date=self.date),
        ]

    def requires(self) -> list[luigi.Task]:
        tasks = self.day_requires()
        cfg = config.schedule()
        previous = self.date - dt.timedelta(days=1)
        if cfg.depends_on_past and previous >= cfg.start_date:
            tasks.append(RunAll(date=previous))
        return tasks

    def complete(self) -> bool:
        return all(task.complete() for task in self.day_requires())
