"""The day's summary across the wings: the end of every `luigi` run and `python -m tasks status`.

`collect(date)` gathers what is stored about one run date: the ELT tables (publish markers and
the builds table, tasks/elt/report.py), the segment load and the sends (summary.json, result
files, ledgers, tasks/campaign/report.py); tasks/ops/summary.py renders it and keeps the run
records, tasks/ops/metrics.py exports it.

- End of a run: importing `tasks` registers `end_of_run` (atexit). In the process of a `luigi`
  command-line run (`luigi --module tasks ...`, `python -m luigi ...`; not `luigi.build()`, not
  the forked task processes, which never run atexit) that names a task with a `date`, it prints
  the summary table after Luigi's own execution summary, appends a run record to
  <var_dir>/runs/runs.jsonl (status `ok` when the task is complete, else `failed`, the tasks
  that failed and the alerts of this run), writes the metrics, and with `[slack]
  notify_success` posts the summary after a successful day. The cron wrapper's luigi runs are
  such runs, so every cron run ends on it too. It never changes the run's exit code.
- `python -m tasks status [--date D] [--days N]`: the same table for each of the N days up to D
  (default: the day the schedule is on, tasks.params.default_run_date), each with its last run
  record; exits 1 when the last run shown failed.

Reads [report], [elt], [warehouse], [results], [paths], the channel sections, [slack], [metrics].
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from tasks import config
from tasks.ops import alerts
from tasks.ops import summary as summaries
from tasks.ops.alert_ledger import AlertLedger
from tasks.ops.slack import alerts_file
from tasks.params import default_run_date

logger = logging.getLogger(__name__)

_STARTED = time.time()
_PID = os.getpid()
_registered = False


def collect(date: dt.date, run: dict[str, Any] | None = None, warehouse: bool = True,
            recorded: dict[str, Any] | None = None) -> summaries.DaySummary:
    """What is stored about `date` (and the run that made it, if given); unreadable parts become problems.
    `recorded`: a luigi run record holding the table reports it saw at its end; they are shown instead of
    asking the warehouse (whose connector alone takes longer to load than the rest of `status`)."""
    summary = summaries.DaySummary(date=date.isoformat(), run=run)
    if recorded is not None:
        summary.tables = recorded["tables"]
        summary.tables_recorded_at = str(recorded.get("finished_at") or "")
    elif warehouse:
        try:
            summary.tables = _tables(date)
        except Exception as exc:  # noqa: BLE001 - a summary shows what it can: the warehouse may be down
            summary.problems.append(f"tables unknown: {type(exc).__name__}: {str(exc)[:200]}")
    try:
        from tasks.campaign import report as campaign_report  # the campaign cores: not at `import tasks`

        summary.segments = campaign_report.segment_report(date)
        summary.sends = campaign_report.send_reports(date)
    except Exception as exc:  # noqa: BLE001 - same: show the rest
        summary.problems.append(f"campaign unknown: {type(exc).__name__}: {str(exc)[:200]}")
    return summary


def _tables(date: dt.date) -> list[dict[str, Any]]:
    from tasks.elt import report as elt_report
    from tasks.warehouse import embedded, session
    from tasks.warehouse.client import embedded_dir

    if config.WarehouseConfig().backend == "embedded" and embedded.read_state(embedded_dir()) is None:
        raise RuntimeError("the embedded warehouse is not running (python -m tasks warehouse start)")
    with session() as client:
        return elt_report.table_reports(client, date)


# ---------------------------------------------------------------- end of a luigi run


def register() -> None:
    """Run `end_of_run` when this process exits (once per process, however often it is called)."""
    global _registered
    if not _registered:
        atexit.register(end_of_run)
        _registered = True


def is_luigi_cli(argv: list[str] | None = None) -> bool:
    """True in the process of a `luigi` command-line run (the `luigi` script or `python -m luigi`)."""
    path = Path((argv or sys.argv or [""])[0])
    return path.name == "luigi" or (path.name == "__main__.py" and path.parent.name == "luigi")


def root_task(argv: list[str]) -> Any:
    """The task a luigi command line names (its arguments after the program name), or None."""
    from luigi.cmdline_parser import CmdlineParser

    try:
        with CmdlineParser.global_instance(argv) as parser:
            return parser.get_task_obj()
    except (Exception, SystemExit):  # noqa: BLE001 - no task to summarise (bad arguments, --help)
        return None


def end_of_run() -> summaries.DaySummary | None:
    """The summary of this `luigi` run's date (see the module docstring); None when not such a run."""
    if os.getpid() != _PID or not is_luigi_cli():
        return None
    return summarize_run(sys.argv[1:], started=_STARTED)


def summarize_run(argv: list[str], started: float, out: Any = None) -> summaries.DaySummary | None:
    """Print, record, export and (on success) post the summary of the run of `argv`. Never raises."""
    try:
        from tasks.ops import metrics  # prometheus_client: only when a summary is exported

        if not config.ReportConfig().summary:
            return None
        task = root_task(argv)
        date = getattr(task, "date", None)
        if not isinstance(date, dt.date):
            return None
        try:
            complete = bool(task.complete())
        except Exception:  # noqa: BLE001 - cannot tell: count it as not done
            complete = False
        failed, warned, alerted = _run_alerts()
        run = {"kind": "luigi", "task": task.task_family, "run_date": date.isoformat(),
               "status": "ok" if complete else summaries.FAILED_RUN,
               "started_at": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
               "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               "duration_s": round(time.time() - started, 2), "host": socket.gethostname(), "pid": os.getpid(),
               "failed_tasks": failed, "warned_tasks": warned, "alerts": alerted,
               "alerts_where": _alerts_where()}
        summary = collect(date, run)
        print("\n" + summaries.render(summary), file=out or sys.stdout, flush=True)
        tables_known = not any(p.startswith("tables unknown") for p in summary.problems)
        kept = ("channel", "campaign", "segment", "counts", "delivery")
        summaries.record_run({**run, "sends": [{k: s.get(k) for k in kept} for s in summary.sends],
                              **({"tables": summary.tables} if tables_known else {})})
        metrics.export(summary)
        summaries.notify_success(summary)
        return summary
    except Exception as exc:  # noqa: BLE001 - the summary must never fail or hide the run
        logger.warning("run summary not written: %s: %s", type(exc).__name__, exc)
        return None


def _run_alerts() -> tuple[list[str], list[str], int]:
    """(summaries of this run's failed tasks, of its tasks whose data checks only warned, how many
    alerts went out individually) from the alert ledger."""
    path = config.var_dir(create=False) / "alerts" / "ledger.sqlite"
    if not path.exists():
        return [], [], 0
    ledger = AlertLedger(path)
    failed, warned, alerted = ledger.run_counts(alerts.RUN_ID)
    return (ledger.run_tasks(alerts.RUN_ID) if failed else [],
            ledger.run_tasks(alerts.RUN_ID, warnings=True) if warned else [], alerted)


def _alerts_where() -> str:
    from tasks.ops.slack import SlackSettings

    return "Slack" if SlackSettings.load().webhook_url else str(alerts_file())


# ---------------------------------------------------------------- python -m tasks status


def main(date: dt.date | None = None, days: int = 1, out: Any = None, live: bool = False) -> int:
    """Print the summary of each of `days` days up to `date`; 1 when the last run shown failed, else 0.
    A day's tables are those its last luigi run recorded at its end, unless `live` (or no run recorded them):
    then the warehouse is asked."""
    out = out or sys.stdout
    last_day = date or default_run_date()
    days = max(1, days)
    runs = summaries.read_runs()
    shown: list[dict[str, Any]] = []
    warehouse = True
    for offset in range(days - 1, -1, -1):
        day = last_day - dt.timedelta(days=offset)
        day_runs = [r for r in runs if day.isoformat() in summaries.run_dates(r)]
        last = day_runs[-1] if day_runs else None
        summary = collect(day, _run_view(last), warehouse=warehouse,
                          recorded=None if live else _recorded_tables(day_runs))
        if any(p.startswith("tables unknown") for p in summary.problems):
            warehouse = False  # said once; do not wait on a dead warehouse for every day
        print(summaries.render(summary), file=out)
        if last is not None:
            shown.append(last)
            print(f"  last run: {last.get('kind', 'cron')} {last.get('status')} at "
                  f"{last.get('finished_at') or last.get('started_at')} ({len(day_runs)} run(s) recorded)", file=out)
        print(file=out)
    if not shown:
        print(f"no run recorded for these dates in {summaries.runs_file()}", file=out)
        return 0
    latest = max(shown, key=lambda r: str(r.get("finished_at") or r.get("started_at") or ""))
    return 1 if summaries.run_failed(latest) else 0


def _recorded_tables(day_runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The day's last luigi run record, when it recorded the tables it saw (a cron record carries none: the
    luigi run it started wrote its own record just before)."""
    luigi_runs = [r for r in day_runs if r.get("kind") == "luigi"]
    return luigi_runs[-1] if luigi_runs and "tables" in luigi_runs[-1] else None


def _run_view(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run record as the summary's `run` (cron records name the exit status instead of ok/failed)."""
    if record is None:
        return None
    return {"task": record.get("task", "RunAll"), "status": record.get("status"),
            "duration_s": record.get("duration_s"), "failed_tasks": record.get("failed_tasks") or [],
            "warned_tasks": record.get("warned_tasks") or [],
            "alerts": record.get("alerts", 0), "alerts_where": record.get("alerts_where", "")}
