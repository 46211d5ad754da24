"""Shared Luigi parameters."""

from __future__ import annotations

import datetime as dt

import luigi


class RunDateParameter(luigi.DateParameter):
    """The run date; defaults to today when the task is built, not when the module was imported
    (a long-lived worker or scheduler process would otherwise keep the import day forever)."""

    def _value_iterator(self, task_name, param_name):  # noqa: ANN001, ANN202 (luigi's internal protocol)
        yield from super()._value_iterator(task_name, param_name)
        yield (dt.date.today(), None)
