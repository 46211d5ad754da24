"""Shared Luigi parameters."""

from __future__ import annotations

import datetime as dt

import luigi


class RunDateParameter(luigi.DateParameter):
    """The run date; defaults to today when the task is built, not when the module was imported
    (a long-lived worker or scheduler process would otherwise keep the import day forever).
    Every task of the package takes its `date` this way."""

    def __init__(self, **kwargs):  # noqa: ANN003, ANN204 (luigi.Parameter's keyword arguments)
        kwargs.setdefault(
            "description", "Business date (YYYY-MM-DD) the task builds or sends for; default: today."
        )
        super().__init__(**kwargs)

    def _value_iterator(self, task_name, param_name):  # noqa: ANN001, ANN202 (luigi's internal protocol)
        yield from super()._value_iterator(task_name, param_name)
        yield (dt.date.today(), None)
