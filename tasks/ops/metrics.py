"""Business metrics for Prometheus: what the day produced, as prometheus_client gauges.

luigid's own `/metrics` (`[scheduler] metrics_collector = prometheus`, turned on by `python -m
tasks luigid`) counts task states only. These are ours, from the run summary (counts as stored,
so a value is the day's state, not an increment: gauges):

    tasks_messages{channel, campaign, segment, state}   recipients of a send by ledger state
    tasks_send_rate_messages_per_second{channel, ...}   achieved rate of a finished send
    tasks_send_duration_seconds{channel, ...}           duration of a finished send
    tasks_segment_rows{outcome}                         LoadSegments rows: read, valid, rejected, blank
    tasks_segment_rejects{reason}                       rejected rows by reason
    tasks_segment_channel_issues{channel, reason}       addresses dropped, by channel and reason
    tasks_table_rows{table}                             rows of the table's newest build of the day
    tasks_table_published{table}                        1 when the day's publish marker is there
    tasks_check_failures{table, status}                 checks that failed (fail) or warned (warn)
    tasks_run_duration_seconds{task}                    the last run's duration
    tasks_run_success{task}                             1 when the last run's day completed, else 0
    tasks_run_alerts{task}                              tasks of the last run that failed (alerted)
    tasks_run_warnings{task}                            tasks of the last run whose data checks warned
    tasks_summary_date_timestamp_seconds                the run date the values describe (midnight UTC)
    tasks_last_run_timestamp_seconds                    when they were written

After every run they go to a textfile in node_exporter's textfile-collector format
(`[metrics] textfile`, default <var_dir>/metrics/mau_campaign_tasks.prom, replaced atomically;
point it at node_exporter's --collector.textfile.directory, since var/ is owner-only), and to a
Pushgateway when `[metrics] pushgateway_url` is set (job `[metrics] job`). `export()` never
raises: metrics must not fail a run. Reads [metrics] and [paths].
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from tasks import config
from tasks.files import private_dir
from tasks.ops.summary import DaySummary

logger = logging.getLogger(__name__)

TEXTFILE = "mau_campaign_tasks.prom"


def registry_for(summary: DaySummary) -> CollectorRegistry:
    """A fresh registry holding the summary's metrics (see the module docstring)."""
    reg = CollectorRegistry()
    send_labels = ["channel", "campaign", "segment"]
    messages = Gauge("tasks_messages", "Recipients of a send by ledger state", [*send_labels, "state"], registry=reg)
    rate = Gauge("tasks_send_rate_messages_per_second", "Achieved rate of a finished send", send_labels, registry=reg)
    duration = Gauge("tasks_send_duration_seconds", "Duration of a finished send", send_labels, registry=reg)
    for s in summary.sends:
        labels = (s["channel"], s["campaign"], s["segment"])
        for state, n in (s.get("counts") or {}).items():
            messages.labels(*labels, state).set(n)
        if s.get("rate") is not None:
            rate.labels(*labels).set(float(s["rate"]))
        if s.get("duration_s") is not None:
            duration.labels(*labels).set(float(s["duration_s"]))
    rows = Gauge("tasks_segment_rows", "LoadSegments rows by outcome", ["outcome"], registry=reg)
    rejects = Gauge("tasks_segment_rejects", "Rejected segment rows by reason", ["reason"], registry=reg)
    issues = Gauge("tasks_segment_channel_issues", "Addresses dropped by channel and reason", ["channel", "reason"],
                   registry=reg)
    seg = summary.segments or {}
    if seg.get("done"):
        for outcome, key in (("read", "rows_read"), ("valid", "valid"), ("rejected", "rejected"),
                             ("blank", "blank_lines")):
            rows.labels(outcome).set(int(seg.get(key) or 0))
        for reason, n in (seg.get("rejected_by_reason") or {}).items():
            rejects.labels(reason).set(n)
        for channel, by_reason in (seg.get("channel_issues_by_reason") or {}).items():
            for reason, n in by_reason.items():
                issues.labels(channel, reason).set(n)
    table_rows = Gauge("tasks_table_rows", "Rows of the table's newest build of the day", ["table"], registry=reg)
    published = Gauge("tasks_table_published", "1 when the day's publish marker is there", ["table"], registry=reg)
    checks = Gauge("tasks_check_failures", "Checks that failed or warned", ["table", "status"], registry=reg)
    for t in summary.tables:
        published.labels(t["table"]).set(1 if t.get("published") else 0)
        if t.get("rows") is not None:
            table_rows.labels(t["table"]).set(int(t["rows"]))
        for status in ("fail", "warn"):
            checks.labels(t["table"], status).set(int((t.get("checks") or {}).get(status, 0)))
    run = summary.run or {}
    if run:
        task = str(run.get("task", ""))
        Gauge("tasks_run_duration_seconds", "Duration of the last run", ["task"], registry=reg).labels(task).set(
            float(run.get("duration_s") or 0.0))
        Gauge("tasks_run_success", "1 when the last run's day completed", ["task"], registry=reg).labels(task).set(
            1 if summary.ok else 0)
        Gauge("tasks_run_alerts", "Tasks of the last run that failed", ["task"], registry=reg).labels(task).set(
            len(run.get("failed_tasks") or []))
        Gauge("tasks_run_warnings", "Tasks of the last run whose data checks warned", ["task"],
              registry=reg).labels(task).set(len(run.get("warned_tasks") or []))
    day = dt.datetime.combine(dt.date.fromisoformat(summary.date), dt.time(), dt.UTC)
    Gauge("tasks_summary_date_timestamp_seconds", "The run date described (midnight UTC)", registry=reg).set(
        day.timestamp())
    Gauge("tasks_last_run_timestamp_seconds", "When these values were written", registry=reg).set(time.time())
    return reg


def textfile_path() -> Path | None:
    """Where the textfile goes ([metrics] textfile; `-` for none)."""
    value = config.MetricsConfig().textfile.strip()
    if value == "-":
        return None
    return config.resolve_path(value) if value else config.var_dir() / "metrics" / TEXTFILE


def export(summary: DaySummary) -> Path | None:
    """Write the textfile and push to the Pushgateway if configured; the textfile's path. Never raises."""
    path = None
    try:
        reg = registry_for(summary)
        path = textfile_path()
        if path is not None:
            if not path.parent.exists():
                private_dir(path.parent)
            write_to_textfile(str(path), reg)  # a temporary file, then os.rename: never half-written
        cfg = config.MetricsConfig()
        if cfg.pushgateway_url:
            push_to_gateway(cfg.pushgateway_url, job=cfg.job, registry=reg, timeout=cfg.push_timeout)
    except Exception as exc:  # noqa: BLE001 - metrics must never fail a run
        logger.warning("metrics not exported: %s: %s", type(exc).__name__, exc)
    return path
