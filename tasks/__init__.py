"""Luigi tasks of the MAU ELT and the campaign: `luigi --module tasks RunAll`.

Importing this package reads the project's luigi.cfg, registers every task class (the twelve
below), the failure alert handlers and the end-of-run summary.
"""

from tasks.config import read_project_config

read_project_config()  # before anything reads luigi config: the project's luigi.cfg from any directory

from tasks.campaign.tasks import (  # noqa: E402
    ExportCampaignEvents,
    ExportSegmentLoad,
    ExportSendResults,
    LoadSegments,
    SendEmailCampaign,
    SendPushNotification,
    SendSmsCampaign,
)
from tasks.elt.tasks import BuildAllTables, MauSummary, PublishTable, StageTable  # noqa: E402
from tasks.logs import resolve_logging_conf  # noqa: E402
from tasks.ops import alerts  # noqa: E402, F401  registers the failure handlers
from tasks.run_all import RunAll  # noqa: E402
from tasks.status import register as register_summary  # noqa: E402

register_summary()  # the summary table at the end of every `luigi --module tasks ...` run

resolve_logging_conf()  # before luigi reads [core] logging_conf_file (it checks it against the cwd)

__all__ = [
    "BuildAllTables",
    "ExportCampaignEvents",
    "ExportSegmentLoad",
    "ExportSendResults",
    "LoadSegments",
    "MauSummary",
    "PublishTable",
    "RunAll",
    "SendEmailCampaign",
    "SendPushNotification",
    "SendSmsCampaign",
    "StageTable",
]
