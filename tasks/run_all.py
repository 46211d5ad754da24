"""RunAll: everything for one day (the ELT tables; the campaign sends join it)."""

from __future__ import annotations

import luigi

from tasks.elt import BuildAllTables
from tasks.params import RunDateParameter


class RunAll(luigi.WrapperTask):
    """Every pipeline for `date`: complete when every table is published and every send is done."""

    date = RunDateParameter()

    def requires(self) -> list[luigi.Task]:
        return [BuildAllTables(date=self.date)]
