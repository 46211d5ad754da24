"""Luigi tasks of the MAU ELT and the campaign: `luigi --module tasks RunAll`.

Importing this package registers the task classes (and the failure alert handlers).
"""

from tasks import alerts  # noqa: F401  registers the failure handlers
from tasks.elt import BuildAllTables, MauSummary, PublishTable, StageTable
from tasks.logs import resolve_logging_conf
from tasks.run_all import RunAll

resolve_logging_conf()  # before luigi reads [core] logging_conf_file (it checks it against the cwd)

__all__ = ["BuildAllTables", "MauSummary", "PublishTable", "RunAll", "StageTable"]
