"""Luigi classes of the campaign pipeline: LoadSegments, then the email, SMS and push sends.

Sections read: [segments] (LoadSegments); the send tasks below read their own sections.
Everything the tasks call is plain Python (tasks/campaign/segments/, tasks/campaign/sends.py, tasks/channels/) that
unit-tests without a scheduler.
"""

from __future__ import annotations

import logging
from pathlib import Path

import luigi

from tasks import config
from tasks.campaign import segments as segments_core
from tasks.campaign import sends as channel_core
from tasks.files import write_json_atomic
from tasks.params import RunDateParameter

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
        return segments_core.output_dir(config.var_dir(), self.date)

    def customers_path(self) -> Path:
        """The Parquet file of valid customers (read it with segments.customers_for_channel)."""
        return self.output_dir() / segments_core.CUSTOMERS_FILE

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.output_dir() / segments_core.SUMMARY_FILE))

    def run(self) -> None:
        cfg = config.segments()
        options = config.settings(
            segments_core.LoadOptions, cfg, segments=tuple(s.strip() for s in cfg.segments.split(",") if s.strip())
        )
        self.set_status_message(f"validating {cfg.input_path}")
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
        self.set_progress_percentage(100)


class _SendChannelCampaign(luigi.Task):
    """Base of the three channel sends: send one campaign to one segment on one channel.

    Input: LoadSegments(date)'s customers.parquet. Output:
    <var_dir>/campaigns/<date>/<campaign>/<channel>-<segment>.json (target count, counts by
    state, duration, achieved rate, provider), written atomically once every recipient has
    reached a final ledger state (sent, failed, unknown, or skipped: suppressed, capped,
    duplicate_address). Idempotence: the send ledger, keyed by (campaign, date, channel,
    customer_id): a rerun sends only what is still pending and never a customer twice. Fails
    with CampaignFailedError when more than `max_failure_ratio` failed, and with
    RecipientsHeldError when quiet hours hold recipients past `max_hold_hours` (they stay
    pending for the next run). `template` names the template; it is not part of the identity:
    a campaign reaches a customer once whatever the template.
    """

    channel = ""  # set by each subclass: email, sms or push

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
        return channel_core.channel_config(self.channel).retry_count

    def requires(self) -> LoadSegments:
        return LoadSegments(date=self.date)

    def output(self) -> luigi.LocalTarget:
        path = channel_core.result_path(config.var_dir(), self.date, self.campaign, self.channel, self.segment)
        return luigi.LocalTarget(str(path))

    def run(self) -> None:
        cfg = channel_core.channel_config(self.channel)
        result = channel_core.run_channel_send(
            self.channel, self.date, self.campaign, self.segment, self.requires().customers_path(),
            progress=self._show_progress, template=self.template,
        )
        channel_core.check_failure_ratio(result, cfg.max_failure_ratio)
        channel_core.check_held(result, getattr(cfg, "max_hold_hours", 0.0))
        write_json_atomic(self.output().path, result.as_dict())
        self.set_progress_percentage(100)

    def _show_progress(self, progress: channel_core.Progress) -> None:
        self.set_progress_percentage(round(100 * progress.done_fraction, 1))
        self.set_status_message(str(progress))


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
