"""The run summary: one compact table per day, the run records, and the success post to Slack.

`DaySummary` holds what one day produced, gathered from what is stored (tasks/status.py does
the gathering across the wings): per table, the rows published and the checks; the segment
load's counts and where its rejects are; per send, counts by state, rate and duration; the
alerts of the run. `render()` prints it the way `dbt run` ends; `slack_message()` is the same
for Slack (`[slack] notify_success`). Run records (one JSON line per `luigi` run or cron
invocation) are appended to <var_dir>/runs/runs.jsonl (`record_run`, also the cron wrapper's
file) and read back by `python -m tasks status`. Holds counts and file paths, never an address.
Reads [paths] and [slack].
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tasks import config
from tasks.files import append_json_line
from tasks.ops.slack import Delivery, deliver

FAILED_RUN = "failed"
# statuses of a run record that mean the run did not fail (the cron wrapper's describe_code names
# and "ok"/"failed" of a luigi run record)
NOT_FAILED = {"ok", "skipped", "already_running"}
STATE_ORDER = ("sent", "failed", "unknown", "pending", "sending")


@dataclass
class DaySummary:
    """What one run date produced (counts only), and the run that produced it when there was one."""

    date: str
    tables: list[dict[str, Any]] = field(default_factory=list)
    segments: dict[str, Any] | None = None
    sends: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, Any] | None = None  # status, task, duration_s, failed_tasks, warned_tasks, alerts, alerts_where
    problems: list[str] = field(default_factory=list)  # what could not be read (warehouse down, ...)
    tables_recorded_at: str = ""  # set when the tables are those a run recorded at its end, not asked now

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return self.run is None or self.run.get("status") in NOT_FAILED


def runs_file() -> Path:
    """<var_dir>/runs/runs.jsonl: one JSON line per luigi run and per cron invocation."""
    return config.var_dir() / "runs" / "runs.jsonl"


def record_run(record: dict[str, Any]) -> None:
    """Append one run record (a single O_APPEND write, owner-only file)."""
    append_json_line(runs_file(), record)


def read_runs(path: Path | None = None) -> list[dict[str, Any]]:
    """Every run record, oldest first (a line cut by a crash is skipped)."""
    path = path or config.var_dir(create=False) / "runs" / "runs.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def run_dates(record: dict[str, Any]) -> list[str]:
    """The run dates a record covers (a luigi run: its date; a cron invocation: the days it ran)."""
    return [str(d) for d in (record.get("dates") or ([record["run_date"]] if record.get("run_date") else []))]


def run_failed(record: dict[str, Any]) -> bool:
    return str(record.get("status")) not in NOT_FAILED


# ---------------------------------------------------------------- the table


def _states(sends: Sequence[dict[str, Any]]) -> list[str]:
    seen = {state for s in sends for state in (s.get("counts") or {})}
    return [s for s in STATE_ORDER if s in seen] + sorted(seen - set(STATE_ORDER))


def _grid(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                             enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]


DELIVERY_FIGURES = ("delivered", "bounced", "complained", "filtered")


def _figure(delivery: dict[str, Any], name: str) -> str:
    count = int(delivery.get(name) or 0)
    rate = delivery.get(f"{name}_rate")
    if rate is None:
        return f"{count:,}"
    percent = 100 * float(rate)  # two decimals under 1 %: a complaint limit is 0.3 %
    return f"{count:,} ({percent:.2f}%)" if 0 < percent < 1 else f"{count:,} ({percent:.1f}%)"


def _delivery_lines(sends: Sequence[dict[str, Any]]) -> list[str]:
    """The delivery figures of the sends whose provider reports them (counts, and rates over the messages sent);
    nothing when no send has any."""
    shown = [s for s in sends if isinstance(s.get("delivery"), dict) and s["delivery"].get("sent")]
    if not shown:
        return []
    rows = [["delivery", "sent", *DELIVERY_FIGURES]]
    for s in shown:
        d = s["delivery"]
        rows.append([f"{s['channel']} {s['campaign']}/{s['segment']}", f"{int(d.get('sent') or 0):,}",
                     *(_figure(d, name) for name in DELIVERY_FIGURES)])
    return _grid(rows)


def render(summary: DaySummary) -> str:
    """The compact summary table (plain text, fixed width): the head, then the tables, the segment load, the
    sends, the run's alerts and what could not be read."""
    run = summary.run or {}
    head = f"Summary for {summary.date}"
    if run:
        head += f": {run.get('task', 'run')} {run.get('status', '?')}"
        if run.get("duration_s") is not None:
            head += f" in {float(run['duration_s']):.1f} s"
    lines = ["=" * len(head), head, "=" * len(head)]
    lines += _table_lines(summary) + _segment_lines(summary.segments)
    lines += _send_lines(summary.sends) + _delivery_lines(summary.sends)
    if run:
        lines.append(_alert_line(run))
    lines += [f"  ! {problem}" for problem in summary.problems]
    built = any(t.get("published") or t.get("status") != "not built" for t in summary.tables)
    if not (built or summary.sends or summary.segments):
        lines.append("  nothing stored for this date")
    return "\n".join(lines)


def _table_lines(summary: DaySummary) -> list[str]:
    if not summary.tables:
        return []
    rows = [["table", "published", "rows", "checks"]]
    for t in summary.tables:
        checks = ", ".join(f"{n} {k}" for k, n in sorted(t.get("checks", {}).items())) or "-"
        if t.get("problems"):
            checks += f" ({'; '.join(t['problems'])})"
        state = f"not built because of {t['blocked_by']}" if t.get("blocked_by") else t.get("status")
        rows.append([str(t["table"]), "yes" if t.get("published") else f"no ({state})",
                     "-" if t.get("rows") is None else f"{t['rows']:,}", checks])
    lines = _grid(rows)
    if summary.tables_recorded_at:
        lines.append(f"  tables as the run recorded them at {summary.tables_recorded_at} "
                     "(python -m tasks status --live asks the warehouse)")
    return lines


def _segment_lines(seg: dict[str, Any] | None) -> list[str]:
    if seg is None:
        return []
    if not seg.get("done"):
        return [f"  segments: {seg.get('note', 'not loaded')}; see {seg.get('rejects_file')}"]
    reasons = ", ".join(f"{k} {v}" for k, v in sorted((seg.get("rejected_by_reason") or {}).items()))
    per = seg.get("valid_per_channel") or {}
    lines = [f"  segments: {seg.get('rows_read', 0):,} rows, {seg.get('valid', 0):,} valid "
             f"(email {per.get('email', 0):,}, sms {per.get('sms', 0):,}, push {per.get('push', 0):,}), "
             f"{seg.get('rejected', 0):,} rejected" + (f" ({reasons})" if reasons else "")]
    if seg.get("rejected") or any((seg.get("channel_issues_by_reason") or {}).values()):
        lines.append(f"    rejects and channel issues: {seg.get('rejects_file')}")
    return lines


def _send_lines(sends: Sequence[dict[str, Any]]) -> list[str]:
    if not sends:
        return []
    states = _states(sends)
    rows = [["send", "provider", "target", *states, "msg/s", "time"]]
    for s in sends:
        counts = s.get("counts") or {}
        label = f"{s['channel']} {s['campaign']}/{s['segment']}" + ("" if s.get("done") else " (not done)")
        rows.append([label, str(s.get("provider") or "-"), f"{s.get('target') or 0:,}",
                     *(f"{counts.get(st, 0):,}" for st in states),
                     "-" if s.get("rate") is None else f"{float(s['rate']):.1f}",
                     "-" if s.get("duration_s") is None else f"{float(s['duration_s']):.1f}s"])
    # a send its breaker held: why, and whether a person released it
    return _grid(rows) + [f"  {s['channel']} {s['campaign']}/{s['segment']}: {s['hold']}" for s in sends
                          if s.get("hold")]


def _alert_line(run: dict[str, Any]) -> str:
    alerts = int(run.get("alerts") or 0)
    failed = run.get("failed_tasks") or []
    warned = run.get("warned_tasks") or []
    text = f"  alerts: {alerts}"
    if alerts or failed or warned:
        text += f" ({run.get('alerts_where')})"
    for what, names in (("failed", failed), ("warned", warned)):
        if names:
            text += f"; {len(names)} {what}: {', '.join(names[:5])}" + (" ..." if len(names) > 5 else "")
    return text


def slack_message(summary: DaySummary) -> dict[str, Any]:
    """The summary as a Slack message (the table in a code block; plain-text fallback)."""
    text = render(summary)
    title = f"Day {summary.date} done" + (f" in {float(summary.run['duration_s']):.0f} s"
                                          if summary.run and summary.run.get("duration_s") else "")
    body = text if len(text) <= 2800 else text[:2799] + "…"
    return {"text": f"{title}\n{body[:2000]}",
            "blocks": [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                       {"type": "section", "text": {"type": "mrkdwn", "text": f"```{body}```"}}]}


def notify_success(summary: DaySummary) -> Delivery | None:
    """Post the summary when `[slack] notify_success` is on and the day is done; never raises."""
    try:
        if not config.SlackConfig().notify_success or not summary.ok:
            return None
        return deliver(slack_message(summary))
    except Exception:  # noqa: BLE001 - a success note must never fail the run
        return None
