"""Business metrics for Prometheus: what the runs produced, as prometheus_client gauges.

luigid's own `/metrics` (`[scheduler] metrics_collector = prometheus`, turned on by `python -m
tasks luigid`) counts task states only. These are ours, from the run summary (counts as stored,
so a value is the day's state, not an increment: gauges):

    tasks_messages{channel, campaign, segment, state}   recipients of a send by ledger state
    tasks_send_rate_messages_per_second{channel, ...}   achieved rate of a finished send
    tasks_send_duration_seconds{channel, ...}           duration of a finished send
    tasks_send_date_timestamp_seconds{channel, ...}     run date of the send those values are of
    tasks_segment_rows{outcome}                         LoadSegments rows: read, valid, rejected, blank
    tasks_segment_rejects{reason}                       rejected rows by reason
    tasks_segment_channel_issues{channel, reason}       addresses dropped, by channel and reason
    tasks_segment_date_timestamp_seconds                run date of the segment load those values are of
    tasks_table_rows{table}                             rows of the table's newest build of its date
    tasks_table_published{table}                        1 when that date's publish marker is there
    tasks_check_failures{table, status}                 checks that failed (fail) or warned (warn)
    tasks_table_date_timestamp_seconds{table}           run date of the build those values are of
    tasks_run_duration_seconds{task}                    the task's last run's duration
    tasks_run_success{task}                             1 when that run's day completed, else 0
    tasks_run_alerts{task}                              tasks of that run that failed (alerted)
    tasks_run_warnings{task}                            tasks of that run whose data checks warned
    tasks_run_date_timestamp_seconds{task}              run date of that run
    tasks_summary_date_timestamp_seconds                run date of the latest run (the one that wrote the file)
    tasks_last_run_timestamp_seconds                    when the latest run wrote the file

Dates are midnight UTC of the run date, in seconds.

**Every series stays until a later run reports the same subject.** A run reports only what it
covered: a `LoadSegments` run for one date has no send, a `SendEmailCampaign` run no table. Had the
file held only the latest run's series, every `tasks_messages` gauge of the last full run would
vanish after such a partial run, and a Prometheus alert on them would fire or fall silent for no
reason. So the series are kept by subject, each subject with the values of the last run that
reported it: a send (channel, campaign, segment), the segment load, a table, a run's root task.
A subject a run reports replaces all of that subject's earlier series (a ledger state that went to
zero goes away with them); a subject it does not report keeps its series. What a run counts as
reporting: a send the date has (a result file or ledger rows), a segment load that finished, a
table built or published for the date, the run itself. Every subject carries its own run date as
a `*_date_timestamp_seconds` series with the subject's labels (not a `date` label on each value:
that would make a new series every day and break every range query), so an alert can ask how old
the values are (`time() - tasks_send_date_timestamp_seconds > 2 * 86400`). A subject never reported
again (a table dropped from the specs, a one-off campaign) stays with its old date; delete the store
to forget everything.

The subjects live in <var_dir>/metrics/series.json (owner-only, replaced atomically, read, merged
and written under an flock on <var_dir>/metrics/series.lock so two runs ending at once both count).
After every run the merged series go to a textfile in node_exporter's textfile-collector format
(`[metrics] textfile`, default <var_dir>/metrics/mau_campaign_tasks.prom, replaced atomically;
point it at node_exporter's --collector.textfile.directory, since var/ is owner-only), and to a
Pushgateway when `[metrics] pushgateway_url` is set (job `[metrics] job`; a push replaces the
job's group, so it pushes the merged series too). `export()` never raises: metrics must not fail a
run. Reads [metrics] and [paths].
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from tasks import config
from tasks.files import FILE_MODE, private_dir, write_json_atomic
from tasks.ops.summary import DaySummary

logger = logging.getLogger(__name__)

TEXTFILE = "mau_campaign_tasks.prom"
STORE = "series.json"
STORE_VERSION = 1
SEND = ("channel", "campaign", "segment")


@dataclass(frozen=True)
class Sample:
    """One value of one series: its family, its labels (name -> value), the value."""

    family: str
    labels: Mapping[str, str]
    value: float


# family -> (help, label names); the order of the label names is the order in the textfile
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "tasks_messages": ("Recipients of a send by ledger state", (*SEND, "state")),
    "tasks_send_rate_messages_per_second": ("Achieved rate of a finished send", SEND),
    "tasks_send_duration_seconds": ("Duration of a finished send", SEND),
    "tasks_send_date_timestamp_seconds": ("Run date of the send these values are of (midnight UTC)", SEND),
    "tasks_segment_rows": ("LoadSegments rows by outcome", ("outcome",)),
    "tasks_segment_rejects": ("Rejected segment rows by reason", ("reason",)),
    "tasks_segment_channel_issues": ("Addresses dropped by channel and reason", ("channel", "reason")),
    "tasks_segment_date_timestamp_seconds": ("Run date of the segment load these values are of (midnight UTC)", ()),
    "tasks_table_rows": ("Rows of the table's newest build of its date", ("table",)),
    "tasks_table_published": ("1 when the date's publish marker is there", ("table",)),
    "tasks_check_failures": ("Checks that failed or warned", ("table", "status")),
    "tasks_table_date_timestamp_seconds": ("Run date of the build these values are of (midnight UTC)", ("table",)),
    "tasks_run_duration_seconds": ("Duration of the task's last run", ("task",)),
    "tasks_run_success": ("1 when the last run's day completed", ("task",)),
    "tasks_run_alerts": ("Tasks of the last run that failed", ("task",)),
    "tasks_run_warnings": ("Tasks of the last run whose data checks warned", ("task",)),
    "tasks_run_date_timestamp_seconds": ("Run date of the task's last run (midnight UTC)", ("task",)),
    "tasks_summary_date_timestamp_seconds": ("Run date of the latest run, the one that wrote this (midnight UTC)", ()),
    "tasks_last_run_timestamp_seconds": ("When the latest run wrote these values", ()),
}


# ---------------------------------------------------------------- what one run reports (pure)


def date_seconds(date: str) -> float:
    """Midnight UTC of the run date `date` (YYYY-MM-DD), in seconds."""
    return dt.datetime.combine(dt.date.fromisoformat(date), dt.time(), dt.UTC).timestamp()


def run_subjects(summary: DaySummary) -> dict[str, list[Sample]]:
    """Subject key -> its series, for every subject the summary's run reported (see the module docstring)."""
    when = date_seconds(summary.date)
    subjects: dict[str, list[Sample]] = {}
    for send in summary.sends:
        labels = {k: str(send[k]) for k in SEND}
        subjects["send/" + "/".join(labels.values())] = _send_samples(send, labels, when)
    seg = summary.segments or {}
    if seg.get("done"):
        subjects["segments"] = _segment_samples(seg, when)
    for table in summary.tables:
        if table.get("published") or table.get("status", "not built") != "not built":
            subjects[f"table/{table['table']}"] = _table_samples(table, when)
    if summary.run:
        task = str(summary.run.get("task", ""))
        subjects[f"run/{task}"] = _run_samples(summary, task, when)
    return subjects


def _send_samples(send: Mapping[str, Any], labels: dict[str, str], when: float) -> list[Sample]:
    out = [Sample("tasks_messages", {**labels, "state": state}, float(n))
           for state, n in (send.get("counts") or {}).items()]
    if send.get("rate") is not None:
        out.append(Sample("tasks_send_rate_messages_per_second", labels, float(send["rate"])))
    if send.get("duration_s") is not None:
        out.append(Sample("tasks_send_duration_seconds", labels, float(send["duration_s"])))
    out.append(Sample("tasks_send_date_timestamp_seconds", labels, when))
    return out


def _segment_samples(seg: Mapping[str, Any], when: float) -> list[Sample]:
    out = [Sample("tasks_segment_rows", {"outcome": outcome}, float(int(seg.get(key) or 0)))
           for outcome, key in (("read", "rows_read"), ("valid", "valid"), ("rejected", "rejected"),
                                ("blank", "blank_lines"))]
    out += [Sample("tasks_segment_rejects", {"reason": str(reason)}, float(n))
            for reason, n in (seg.get("rejected_by_reason") or {}).items()]
    out += [Sample("tasks_segment_channel_issues", {"channel": str(channel), "reason": str(reason)}, float(n))
            for channel, by_reason in (seg.get("channel_issues_by_reason") or {}).items()
            for reason, n in by_reason.items()]
    out.append(Sample("tasks_segment_date_timestamp_seconds", {}, when))
    return out


def _table_samples(table: Mapping[str, Any], when: float) -> list[Sample]:
    labels = {"table": str(table["table"])}
    out = [Sample("tasks_table_published", labels, 1.0 if table.get("published") else 0.0)]
    if table.get("rows") is not None:
        out.append(Sample("tasks_table_rows", labels, float(int(table["rows"]))))
    checks = table.get("checks") or {}
    out += [Sample("tasks_check_failures", {**labels, "status": status}, float(int(checks.get(status, 0))))
            for status in ("fail", "warn")]
    out.append(Sample("tasks_table_date_timestamp_seconds", labels, when))
    return out


def _run_samples(summary: DaySummary, task: str, when: float) -> list[Sample]:
    run = summary.run or {}
    labels = {"task": task}
    return [
        Sample("tasks_run_duration_seconds", labels, float(run.get("duration_s") or 0.0)),
        Sample("tasks_run_success", labels, 1.0 if summary.ok else 0.0),
        Sample("tasks_run_alerts", labels, float(len(run.get("failed_tasks") or []))),
        Sample("tasks_run_warnings", labels, float(len(run.get("warned_tasks") or []))),
        Sample("tasks_run_date_timestamp_seconds", labels, when),
    ]


def merge(stored: Mapping[str, list[Sample]], reported: Mapping[str, list[Sample]]) -> dict[str, list[Sample]]:
    """The stored subjects with those a run reported put in their place (whole: no series of the old
    values of a reported subject survives)."""
    return {**stored, **reported}


def registry_for(subjects: Mapping[str, list[Sample]], summary_date: str, now: float) -> CollectorRegistry:
    """A fresh registry holding every subject's series, plus when and for which date the latest run wrote."""
    reg = CollectorRegistry()
    gauges: dict[str, Gauge] = {}
    samples = [s for key in sorted(subjects) for s in subjects[key]]
    samples += [Sample("tasks_summary_date_timestamp_seconds", {}, date_seconds(summary_date)),
                Sample("tasks_last_run_timestamp_seconds", {}, now)]
    for sample in samples:
        if sample.family not in FAMILIES:
            continue  # written by another version of this module: not ours to describe any more
        help_text, label_names = FAMILIES[sample.family]
        if sample.family not in gauges:
            gauges[sample.family] = Gauge(sample.family, help_text, label_names, registry=reg)
        gauge = gauges[sample.family]
        values = [sample.labels.get(name, "") for name in label_names]
        (gauge.labels(*values) if label_names else gauge).set(sample.value)
    return reg


# ---------------------------------------------------------------- the store under var/


def store_path() -> Path:
    """<var_dir>/metrics/series.json: every subject's last series."""
    return config.var_dir() / "metrics" / STORE


def load_store(path: Path) -> dict[str, list[Sample]]:
    """The stored subjects; none when the file is missing or unreadable (the next runs fill it again)."""
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("version") != STORE_VERSION:
            raise ValueError(f"version {raw.get('version')!r}, expected {STORE_VERSION}")
        return {key: [Sample(s["family"], dict(s["labels"]), float(s["value"])) for s in samples]
                for key, samples in raw["subjects"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("metrics store %s unreadable, starting afresh: %s: %s", path, type(exc).__name__, exc)
        return {}


def save_store(path: Path, subjects: Mapping[str, list[Sample]]) -> None:
    """Replace the store atomically (owner-only)."""
    write_json_atomic(path, {"version": STORE_VERSION, "subjects": {
        key: [{"family": s.family, "labels": dict(s.labels), "value": s.value} for s in samples]
        for key, samples in subjects.items()}})


@contextlib.contextmanager
def _store_lock(path: Path) -> Iterator[None]:
    """An exclusive flock beside the store for one read-merge-write (waits for another run's)."""
    private_dir(path.parent)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# ---------------------------------------------------------------- export


def textfile_path() -> Path | None:
    """Where the textfile goes ([metrics] textfile; `-` for none)."""
    value = config.MetricsConfig().textfile.strip()
    if value == "-":
        return None
    return config.resolve_path(value) if value else config.var_dir() / "metrics" / TEXTFILE


def export(summary: DaySummary) -> Path | None:
    """Merge the run's subjects into the store, write the textfile and push to the Pushgateway if
    configured; the textfile's path. Never raises."""
    path = None
    try:
        store = store_path()
        with _store_lock(store):
            subjects = merge(load_store(store), run_subjects(summary))
            save_store(store, subjects)
            reg = registry_for(subjects, summary.date, time.time())
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
