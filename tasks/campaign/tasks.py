"""Luigi classes of the campaign pipeline: LoadSegments, then the email, SMS and push sends, and
the exports of their results to the warehouse (ExportSegmentLoad, ExportSendResults).

Sections read: [segments] (LoadSegments), [results] (the exports); the send tasks below read
their own sections.
Everything the tasks call is plain Python (tasks/campaign/segments/, tasks/campaign/wiring.py and its neighbours,
tasks/channels/) that unit-tests without a scheduler; where a result goes is the state backend's answer
(tasks.state.backend().result_target).
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import luigi

from tasks import config, state
from tasks.campaign import outcome, ranges, send_config, wiring
from tasks.campaign.send_config import CHANNELS
from tasks.channels.ledger import SendKey, Shard
from tasks.channels.send_result import Progress
from tasks.luigi_internals import report_progress, report_status
from tasks.params import RunDateParameter
from tasks.state import locks
from tasks.state.targets import ResultTarget
from tasks.warehouse import MarkerTableTarget, session

# segments, results and reconcile are imported inside the methods that run them: they bring pyarrow and numpy,
# which `import tasks` (every `luigi --module tasks` and `python -m tasks` start) must not pay for.

logger = logging.getLogger(__name__)


class LoadSegments(luigi.Task):
    """Load the customer-segment CSV of `[segments] input_path` into validated Parquet.

    Outputs, under <var_dir>/segments/<date>/: customers.parquet (valid customers),
    rejects.csv (rejected rows and per-channel issues, raw values: never log it) and
    summary.json, written last: it is the completion target. Idempotence key: `date`.
    Fails with DataValidationError when the file is missing, empty, lacks required columns
    or rejects more than `max_reject_ratio` of its rows (rejects.csv is still written).
    """

    date = RunDateParameter()

    def output_dir(self) -> Path:
        """The folder holding this date's outputs."""
        from tasks.campaign import segments as segments_core

        return segments_core.output_dir(config.var_dir(), self.date)

    def customers_path(self) -> Path:
        """The Parquet file of valid customers (read it with segments.customers_for_channel)."""
        from tasks.campaign import segments as segments_core

        return self.output_dir() / segments_core.CUSTOMERS_FILE

    def output(self) -> luigi.LocalTarget:
        from tasks.campaign import segments as segments_core

        return luigi.LocalTarget(str(self.output_dir() / segments_core.SUMMARY_FILE))

    def run(self) -> None:
        # the processes of this host take turns (a send's shards may each load the file on their own host), and
        # one that finds the load done meanwhile does nothing
        with locks.host_lock(self.output_dir().parent, f"load-{self.date}"):
            if not self.complete():
                self._load()

    def _load(self) -> None:
        from tasks.campaign import segments as segments_core

        cfg = config.SegmentsConfig()
        options = config.settings(
            segments_core.LoadOptions, cfg, segments=tuple(s.strip() for s in cfg.segments.split(",") if s.strip())
        )
        report_status(self, f"validating {cfg.input_path}")
        result = segments_core.load_segments(config.resolve_path(cfg.input_path), self.output_dir(), options)
        s = result.summary
        # counts and reasons only: the rows themselves (PII) stay in rejects.csv
        logger.info(
            "LoadSegments %s: %d rows read, %d valid, %d rejected %s, channel issues %s, "
            "addressable email=%d sms=%d push=%d, %.2fs",
            self.date, s["rows_read"], s["valid"], s["rejected"], s["rejected_by_reason"],
            {k: v for k, v in s["channel_issues_by_reason"].items() if v},
            s["valid_per_channel"]["email"], s["valid_per_channel"]["sms"], s["valid_per_channel"]["push"],
            s["duration_s"],
        )
        report_status(self,
            f"done: {s['rows_read']} rows read, {s['valid']} valid, {s['rejected']} rejected "
            f"({self.output_dir() / segments_core.REJECTS_FILE}); addressable email {s['valid_per_channel']['email']}, "
            f"sms {s['valid_per_channel']['sms']}, push {s['valid_per_channel']['push']}; {s['duration_s']:.1f} s"
        )
        report_progress(self, 100)


def _segments_here(task: luigi.Task, date: datetime.date) -> Path:
    """customers.parquet of `date` on this host, loading the segment file here first when needed.

    Each host keeps its own var/, so a task may run on a host where luigid already saw LoadSegments done
    elsewhere; LoadSegments then runs in this task's process, its status shown as this task's (Luigi's
    TaskProcess sets these callbacks the same way on the task it runs)."""
    segments = LoadSegments(date=date)
    if not segments.complete():
        segments.set_status_message = task.set_status_message
        segments.set_progress_percentage = task.set_progress_percentage
        segments.run()
    return segments.customers_path()


def _show_progress(task: luigi.Task, progress: Progress) -> None:
    """A send's progress in luigid's visualiser: the bar and the counts so far."""
    report_progress(task, round(100 * progress.done_fraction, 1))
    report_status(task, str(progress))


def _result_target(path: Path, marker_id: str) -> ResultTarget:
    """Where a send's result goes, as the state backend says (a JSON file under var/; with shared state also a
    marker row every host sees, which is then the completion)."""
    return state.backend().result_target(path, marker_id)


class _SendChannelCampaign(luigi.Task):
    """Base of the three channel sends: send one campaign to one segment on one channel.

    Input: LoadSegments(date)'s customers.parquet. Output:
    <var_dir>/campaigns/<date>/<campaign>/<channel>-<segment>.json (target count, counts by
    state, duration, achieved rate, provider), written atomically once every recipient has
    reached a final ledger state (sent, failed, unknown, or skipped: suppressed, capped,
    duplicate_address); with `[state] backend = postgres` also a marker row in the shared
    database, which is then the completion target. Idempotence: the send ledger, keyed by
    (campaign, date, channel, customer_id): a rerun sends only what is still pending and never a
    customer twice. Fails with CampaignFailedError when more than `max_failure_ratio` failed, and
    with RecipientsHeldError when quiet hours hold recipients past `max_hold_hours` (they stay
    pending for the next run). `template` names the template; it is not part of the identity: a
    campaign reaches a customer once whatever the template. With `[<channel>_campaign] shards =
    N > 1` it requires N SendShard tasks, which do the sending (any worker, any host), and adds
    up their results.
    """

    channel = ""  # set by each subclass: email, sms or push
    segment = luigi.Parameter(default="all", description="Target segment ('all' = every segment); each send "
                              "redefines it with its section's default.")

    date = RunDateParameter()
    campaign = luigi.Parameter(
        default="demo",
        description="Campaign name: part of the ledger key with the date, so a campaign reaches a customer once "
        "per date (the frequency cap keeps a daily schedule from doing so every day).",
    )
    template = luigi.Parameter(
        default="", significant=False,
        description="Template name, config/templates/<channel>/<name>.toml (the seed's 'Template Name'); "
        "empty: [<channel>_campaign] template.",
    )

    @property
    def retry_count(self) -> int:
        """Luigi's per-task attempts, from [<channel>_campaign] retry_count."""
        return send_config.channel_config(self.channel).retry_count

    @classmethod
    def bulk_complete(cls, parameter_tuples: Iterable[object]) -> list[datetime.date]:
        """The run dates of a RangeDaily range whose send is done (campaign/ranges.py: one look for the range)."""
        return ranges.completed_days(cls, parameter_tuples)

    def shards(self) -> list[SendShard]:
        count = send_config.channel_config(self.channel).shards
        if count <= 1:
            return []
        return [SendShard(channel=self.channel, date=self.date, campaign=self.campaign, segment=self.segment,
                          template=self.template, shard=i, shards=count) for i in range(count)]

    def requires(self) -> list[luigi.Task]:
        shards: list[luigi.Task] = list(self.shards())
        return shards or [LoadSegments(date=self.date)]  # with shards, only they read the customers

    def result_path(self) -> Path:
        return wiring.result_path(config.var_dir(), self.date, self.campaign, self.channel, self.segment)

    def output(self) -> ResultTarget:
        return _result_target(self.result_path(), wiring.marker_id(self.channel, self.campaign, self.date,
                                                                   self.segment))

    def run(self) -> None:
        from tasks.campaign import reconcile

        cfg = send_config.channel_config(self.channel)
        shards = self.shards()
        if shards:
            result = outcome.combine_results([task.output().read() or {} for task in shards])
        else:
            customers = LoadSegments(date=self.date).customers_path()
            if reconcile.supported(cfg):  # a Twilio re-run first settles its unknowns with the provider
                reconcile.reconcile_send(self.channel, self.date, self.campaign, self.segment, customers,
                                         template=self.template)
            result = wiring.run_channel_send(
                self.channel, self.date, self.campaign, self.segment, customers,
                progress=functools.partial(_show_progress, self), template=self.template,
            ).as_dict()
        outcome.check_failure_ratio(result, cfg.max_failure_ratio)
        outcome.check_held(result, cfg)
        self.output().write(result)
        report_progress(self, 100)


class SendShard(luigi.Task):
    """One shard of a channel send (`[<channel>_campaign] shards = N > 1`): the recipients whose stable hash of
    customer_id is `shard` mod `shards`, sent under the shard's own lock and the channel's shared rate limit.

    Input: the date's customers.parquet on the host that runs the shard, which run() loads there first when
    needed (LoadSegments, under a lock of this host, so shards starting together load the file once). It
    requires no task, whatever the state backend: each host keeps its own var/, and Luigi checks a
    requirement's output on the host that runs the task, so LoadSegments run by another host (luigid then
    shows it done) would fail this one for a file it never needed from there; what the shard needs is the
    file on its own host, and it makes sure of that itself. Output:
    <var_dir>/campaigns/<date>/<campaign>/<channel>-<segment>.shard-<i>-of-<n>.json (and a marker row with
    Postgres state). Idempotence: the send ledger, as for the whole send.
    """

    channel = luigi.ChoiceParameter(choices=list(CHANNELS), description="email, sms or push.")
    date = RunDateParameter()
    campaign = luigi.Parameter(description="Campaign name (part of the ledger key).")
    segment = luigi.Parameter(description="Target segment ('all' = every segment).")
    template = luigi.Parameter(default="", significant=False,
                               description="Template name (empty: [<channel>_campaign] template).")
    shard = luigi.IntParameter(description="This shard's index, 0..shards-1.")
    shards = luigi.IntParameter(description="How many shards the send is split into.")

    @property
    def retry_count(self) -> int:
        return send_config.channel_config(self.channel).retry_count

    def requires(self) -> list[luigi.Task]:
        return []  # the customers file of this host: run() loads it (see the class docstring)

    def result_path(self) -> Path:
        path = wiring.result_path(config.var_dir(), self.date, self.campaign, self.channel, self.segment)
        return wiring.shard_result_path(path, self.shard, self.shards)

    def output(self) -> ResultTarget:
        return _result_target(self.result_path(), wiring.marker_id(
            self.channel, self.campaign, self.date, self.segment, self.shard, self.shards))

    def run(self) -> None:
        from tasks.campaign import reconcile

        customers = _segments_here(self, self.date)
        shard = Shard(self.shard, self.shards)
        cfg = send_config.channel_config(self.channel)
        if reconcile.supported(cfg):  # this shard's unknowns, first
            reconcile.reconcile_send(self.channel, self.date, self.campaign, self.segment, customers, shard=shard,
                                     template=self.template)
        result = wiring.run_channel_send(
            self.channel, self.date, self.campaign, self.segment, customers,
            progress=functools.partial(_show_progress, self), shard=shard, template=self.template,
        ).as_dict()
        # a shard with recipients held past max_hold_hours is not done: its next run resumes them
        outcome.check_held(result, cfg)
        self.output().write(result)
        report_progress(self, 100)


class SendEmailCampaign(_SendChannelCampaign):
    """The e-mail send ([email_campaign]); see _SendChannelCampaign for inputs, output and idempotence."""

    channel = "email"
    segment = luigi.Parameter(
        default="all", config_path={"section": "email_campaign", "name": "segment"},
        description="Target segment ('all' = every segment); default [email_campaign] segment.",
    )


class SendSmsCampaign(_SendChannelCampaign):
    """The SMS send ([sms_campaign]); see _SendChannelCampaign for inputs, output and idempotence."""

    channel = "sms"
    segment = luigi.Parameter(
        default="all", config_path={"section": "sms_campaign", "name": "segment"},
        description="Target segment ('all' = every segment); default [sms_campaign] segment.",
    )


class SendPushNotification(_SendChannelCampaign):
    """The push send ([push_campaign]); see _SendChannelCampaign for inputs, output and idempotence."""

    channel = "push"
    segment = luigi.Parameter(
        default="all", config_path={"section": "push_campaign", "name": "segment"},
        description="Target segment ('all' = every segment); default [push_campaign] segment.",
    )


SEND_TASKS: dict[str, type[_SendChannelCampaign]] = {
    "email": SendEmailCampaign, "sms": SendSmsCampaign, "push": SendPushNotification,
}


class ExportSegmentLoad(luigi.Task):
    """LoadSegments' counts into [results] segment_loads_table (one row per date).

    Input: LoadSegments(date)'s summary.json. Output: marker row `segment_loads:<date>` holding
    the digest of the summary it exported (results.load_digest), so a load redone since on other
    data is exported again. Idempotence key: `date`; a re-run replaces the date's row in one
    transaction. A separate task so that a warehouse outage fails only the export, never the load
    or the sends.
    """

    date = RunDateParameter()

    def requires(self) -> LoadSegments:
        return LoadSegments(date=self.date)

    def output(self) -> MarkerTableTarget:
        from tasks.campaign import results as results_core

        return MarkerTableTarget(results_core.load_marker_id(self.date), config.ResultsConfig().segment_loads_table)

    def complete(self) -> bool:
        from tasks.campaign import results as results_core

        summary = Path(self.input().path)
        if not summary.exists():  # not loaded on this host (or not yet): the marker row says
            return self.output().exists()
        digest = results_core.load_digest(json.loads(summary.read_text(encoding="utf-8")))
        return self.output().build_id() == digest

    def run(self) -> None:
        from tasks.campaign import results as results_core
        from tasks.campaign import segments as segments_core

        table = config.ResultsConfig().segment_loads_table
        summary = json.loads(Path(self.input().path).read_text(encoding="utf-8"))
        rejects = self.requires().output_dir() / segments_core.REJECTS_FILE
        row = results_core.segment_load_row(self.date, summary, rejects)
        with session() as client:
            results_core.replace_segment_load(client, table, row, self.date, config.var_dir() / "results")
            self.output().touch(client, results_core.load_digest(summary))
        report_status(self, f"{table}: the row of {self.date} loaded")


class ExportSendResults(luigi.Task):
    """One channel send's per-recipient outcomes into [results] campaign_sends_table.

    Input: the send task (its result JSON: provider and counts) and its ledger rows, limited
    to the segment's recipients. Output: marker row
    `campaign_sends:<campaign>:<date>:<channel>:<segment>` holding the digest of the result file
    it exported, so a result rewritten since (a re-run, a reconcile) is exported again.
    Idempotence key: (date, channel, campaign, segment); a re-run replaces that send's rows in
    one transaction. No address leaves the ledger: customer_id is the join key.
    """

    date = RunDateParameter()
    channel = luigi.ChoiceParameter(choices=list(SEND_TASKS), description="email, sms or push.")
    campaign = luigi.Parameter(default="demo", description="The send's campaign name.")
    segment = luigi.Parameter(default="", description="The send's segment; empty: [<channel>_campaign] segment.")

    def requires(self) -> _SendChannelCampaign:
        extra = {"segment": self.segment} if self.segment else {}
        return SEND_TASKS[self.channel](date=self.date, campaign=self.campaign, **extra)

    def key(self) -> SendKey:
        return SendKey(self.campaign, self.date.isoformat(), self.channel)

    def output(self) -> MarkerTableTarget:
        from tasks.campaign import results as results_core

        return results_core.send_target(self.key(), self.requires().segment)

    def complete(self) -> bool:
        from tasks.campaign import results as results_core

        send = self.requires()
        return results_core.send_exported(self.key(), send.segment, send.result_path())

    def run(self) -> None:
        from tasks.campaign import results as results_core

        send = self.requires()
        path = send.output().local_file()  # the send may have finished on another host
        result = json.loads(path.read_text(encoding="utf-8"))
        customers = _segments_here(self, self.date)
        count = results_core.export_send(self.channel, self.date, self.campaign, send.segment, customers,
                                         str(result.get("provider", "")), path, expected=result.get("counts"))
        report_status(self, f"{config.ResultsConfig().campaign_sends_table}: {count} rows of {self.channel} "
                                f"{self.campaign}/{send.segment} loaded")


class ExportCampaignEvents(luigi.Task):
    """Every delivery event stored since the previous export into [results] campaign_events_table, whatever send
    (or day) it belongs to; then campaign_sends' delivery columns of those events' sends.

    Input: the delivery event store (tasks/state/events.py), after applying its new events to the ledgers and the
    suppression store (tasks/campaign/delivery.py). No required task: events keep arriving for days after a send,
    and a send that failed today must not stop yesterday's events. Output: marker row `campaign_events:<date>`
    holding the last event seq it loaded. Idempotence: the table's highest event_seq is where the next export
    starts; the load of a seq range replaces that range in one transaction, so a re-run never duplicates.
    """

    date = RunDateParameter()

    def output(self) -> MarkerTableTarget:
        from tasks.campaign import results as results_core

        return results_core.events_target(self.date)

    def run(self) -> None:
        from tasks.campaign import results as results_core
        from tasks.campaign.delivery import apply_delivery_events

        var_dir = config.var_dir()
        apply_delivery_events(var_dir)
        count, after, through = results_core.export_events(self.date, var_dir)
        report_status(self, f"{config.ResultsConfig().campaign_events_table}: {count} event(s) loaded "
                            f"(store seq {after + 1}..{through})")
