"""Failure alerts: Luigi event handlers on every `luigi.Task` that post to Slack, never failing the run.

Registered by `import tasks` (idempotent: importing or calling `register()` again replaces, never
duplicates). Which Luigi event fires where (luigi 3.8 worker.py):

- `Event.FAILURE` (task, exception): in the process that ran the task, i.e. the forked task
  process when `--workers > 1` or the task has a `worker_timeout`, else the worker itself.
- `Event.PROCESS_FAILURE` (task, message) and `Event.TIMEOUT` (task, message): in the parent
  worker, when a forked task process died (SIGKILL, the OOM killer: exit code -9) or ran past
  its timeout and was terminated.
- `Event.BROKEN_TASK` (task, exception): in the parent worker while scheduling, when
  `requires()` (`deps()`) raises. When `complete()` raises, Luigi fires only
  `Event.DEPENDENCY_MISSING` (task) for a non-external task; that is alerted too.
- `tasks.errors.CHECK_WARNING` (task, message), our own event: in the process that ran the
  task, when data checks of severity "warn" failed; the task goes on and publishes.
- With `--workers 1` and no timeout the task runs inside the worker process: a SIGKILL there
  kills the whole `luigi` process and no handler can run. The cron wrapper covers that case
  with `send_run_summary()` for any non-zero or killed `luigi` exit.

Storm control (tasks/ops/alert_ledger.py): a run is this process and its forked task processes,
named by RUN_ID (host, pid, start time) fixed when this module is first imported and inherited
through fork. Per run: one alert per task (later attempts are counted) unless `[slack]
alert_on_retry`, at most `[slack] max_alerts_per_run` individual alerts, and the rest plus
the repeat counts go into one digest sent when the run's process exits (`atexit`; forked task
processes never run it), or by `flush_digest()` / `send_run_summary()`.

Every text leaving here goes through tasks/ops/redaction.py. Reads [slack], [alerts], [core]
(scheduler URL) and [paths] (the ledger and the fallback file live under <var_dir>/alerts/).
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import re
import signal
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import luigi
import luigi.configuration
import luigi.interface
import luigi.retcodes

from tasks import config
from tasks.errors import CHECK_WARNING, SendHeldError
from tasks.luigi_internals import complete_traceback, event_handlers
from tasks.ops.alert_ledger import ALERT, WARNING_SUFFIX, AlertLedger, PendingFailure
from tasks.ops.redaction import redact
from tasks.ops.slack import WEBHOOK_ENV, Delivery, SlackSettings, alerts_dir, deliver

logger = logging.getLogger(__name__)

RUN_ID = f"{socket.gethostname()}-{os.getpid()}-{int(time.time())}"
_RUN_PID = os.getpid()
_MARK = "_tasks_alert_handler"  # attribute naming our callbacks, so register() can find earlier copies
_DIGEST_LINES = 40


# ---------------------------------------------------------------- event handlers


def on_failure(task: luigi.Task, exception: BaseException) -> None:
    """Event.FAILURE: run() (or the dependency check before it) raised. A send its breaker held alerts once: in
    the run that recorded the hold; its retries and later runs, stopped by the same hold, only log."""
    if isinstance(exception, SendHeldError):
        if not exception.first:
            logger.info("%s is still held by its breaker (alerted when it tripped): no new alert", task.task_family)
            return
        _alert(task, "held by its breaker", type(exception).__name__, str(exception))
        return
    _alert(task, "failure", type(exception).__name__, str(exception))


def on_process_failure(task: luigi.Task, error_msg: str) -> None:
    """Event.PROCESS_FAILURE: the forked task process died without reporting (killed, OOM, segfault)."""
    _alert(task, "process failure", "ProcessDied", _explain_exit(error_msg))


def on_timeout(task: luigi.Task, error_msg: str) -> None:
    """Event.TIMEOUT: the task ran past its worker_timeout and Luigi terminated it."""
    _alert(task, "timeout", "TaskTimeout", error_msg)


def on_broken_task(task: luigi.Task, exception: BaseException) -> None:
    """Event.BROKEN_TASK: requires() raised while Luigi was scheduling; the task cannot run."""
    _alert(task, "broken task", type(exception).__name__, str(exception))


def on_check_warning(task: luigi.Task, message: str) -> None:
    """tasks.errors.CHECK_WARNING: data checks of severity warn failed; the task goes on."""
    _alert(task, "data check warning", "DataCheckWarning", message, key_suffix=WARNING_SUFFIX)


def on_dependency_missing(task: luigi.Task) -> None:
    """Event.DEPENDENCY_MISSING on a task with a run(): its complete() raised while scheduling."""
    if task.run is None or task.run == NotImplemented:
        return  # an external task whose data is not there yet: not a failure of this code
    error_type, message = _complete_error_from_stack()
    _alert(task, "complete() failed", error_type, message)


_HANDLERS = {
    luigi.Event.FAILURE: on_failure,
    luigi.Event.PROCESS_FAILURE: on_process_failure,
    luigi.Event.TIMEOUT: on_timeout,
    luigi.Event.BROKEN_TASK: on_broken_task,
    luigi.Event.DEPENDENCY_MISSING: on_dependency_missing,
    CHECK_WARNING: on_check_warning,
}


def register() -> None:
    """Attach the handlers to luigi.Task, replacing copies from an earlier import (no double alerts)."""
    for event, handler in _HANDLERS.items():
        for old in event_handlers(event):
            if getattr(old, _MARK, False):
                luigi.Task.remove_event_handler(event, old)
        setattr(handler, _MARK, True)
        luigi.Task.event_handler(event)(handler)


# ---------------------------------------------------------------- sending


def _alert(task: luigi.Task, kind: str, error_type: str, message: str, key_suffix: str = "") -> None:
    """Record one failure in the ledger and send an individual alert if storm control allows
    (`key_suffix` keeps a warning apart from a later failure of the same task)."""
    try:
        slack_cfg = config.SlackConfig()
        family, params = task.task_family, _params(task)
        region = config.AlertsConfig().phone_region
        first_line = (message.strip().splitlines() or [""])[0]
        summary = redact(f"{family}({params}) {kind}: {error_type}: {first_line}", phone_region=region)[:300]
        decision = _ledger().record(
            RUN_ID, task.task_id + key_suffix, summary,
            cap=slack_cfg.max_alerts_per_run, alert_on_retry=slack_cfg.alert_on_retry,
        )
        if decision.action != ALERT:
            logger.info("Failure of %s %s (#%d in this run): kept for the run digest",
                        family, decision.action, decision.count)
            return
        payload = failure_message(
            task_id=task.task_id, family=family, params=params, kind=kind,
            error_type=error_type, message=message, attempt=decision.count, run_date=task_run_date(task),
        )
        deliver(payload)
    except Exception as exc:  # noqa: BLE001 - an alert must never change the task's outcome: log and go on
        logger.warning("Failure alert for %s not sent: %s", getattr(task, "task_family", "?"), type(exc).__name__)


def flush_digest(run_id: str | None = None) -> Delivery | None:
    """Send the digest of this run's deferred and repeated failures; None when there is nothing to send."""
    try:
        path = _ledger_path()
        if not path.exists():
            return None
        pending = AlertLedger(path).take_pending(run_id=run_id or RUN_ID)
        if not pending:
            return None
        return deliver(digest_message(pending, title=f"Luigi run digest: {_failure_count(pending)}"))
    except Exception as exc:  # noqa: BLE001 - the digest must never fail the run either
        logger.warning("Alert digest not sent: %s", type(exc).__name__)
        return None


def send_run_summary(
    command: str | Sequence[str],
    returncode: int | None,
    *,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    log_tail: str = "",
) -> Delivery | None:
    """Alert that a whole `luigi` run ended badly (non-zero exit, or killed: returncode < 0).

    For the cron wrapper: call it when the luigi process exits non-zero or by a signal. It
    names the exit (signal, Luigi retcode name), the run's time span, the last log lines, and
    any failures of runs since `started_at` that were never reported (a killed run cannot send
    its own digest). Redacted like every alert; rate-limited; never raises.
    """
    try:
        cmd = command if isinstance(command, str) else " ".join(command)
        finished_at = finished_at or datetime.now(UTC)
        path = _ledger_path()
        since = started_at.timestamp() if started_at else None
        pending = AlertLedger(path).take_pending(since=since) if path.exists() else []
        exit_text = _describe_returncode(returncode)
        title = f"Luigi run ended badly: {exit_text}"
        lines = [f"*Command*\n```{cmd}```", f"*Exit*\n{exit_text}"]
        if started_at:
            lines.append(f"*Started* {started_at.isoformat(timespec='seconds')} · *ended* "
                         f"{finished_at.isoformat(timespec='seconds')}")
        if log_tail.strip():
            # redacted whole, then clipped at a line: a secret cut in half no longer matches any pattern
            tail = redact(log_tail.strip(), phone_region=config.AlertsConfig().phone_region)
            if len(tail) > 1500:
                clipped = tail[-1500:]
                tail = clipped.split("\n", 1)[1] if "\n" in clipped else clipped
            lines.append(f"*Last log lines*\n```{tail}```")
        payload = digest_message(pending, title=title, preface=lines)
        return deliver(payload)
    except Exception as exc:  # noqa: BLE001 - the run summary must never fail its caller
        logger.warning("Run summary alert not sent: %s", type(exc).__name__)
        return None


@atexit.register
def _flush_at_exit() -> None:
    """The end-of-run digest, in the run's own process only (forked task processes exit via os._exit)."""
    if os.getpid() == _RUN_PID:
        flush_digest(RUN_ID)


# ---------------------------------------------------------------- messages


def failure_message(
    *,
    task_id: str,
    family: str,
    params: str,
    kind: str,
    error_type: str,
    message: str,
    attempt: int = 1,
    run_date: str | None = None,
) -> dict[str, Any]:
    """Block Kit payload (with a plain `text` fallback) for one failed task, redacted and truncated.

    `run_date` is the task's own date (its `date` parameter): the day whose data failed, which a
    backfill or catch-up runs long after; when it failed is shown apart, as *Failed at*."""
    slack_cfg, alerts_cfg = config.SlackConfig(), config.AlertsConfig()
    region = alerts_cfg.phone_region
    host = socket.gethostname()
    owner = alerts_cfg.owner or os.environ.get("OWNER", "")
    when = datetime.now(UTC).isoformat(timespec="seconds")
    error = _clip(redact(message, phone_region=region).strip() or "(no message)", slack_cfg.max_error_chars)
    title = _clip(f"Luigi {kind}: {family}", 150)
    fields = [
        f"*Task*\n`{family}`",
        f"*Event*\n{kind}" + (f" (attempt {attempt})" if attempt > 1 else ""),
        f"*Host*\n{host}",
        f"*Run date*\n{run_date or '-'}",
        f"*Failed at*\n{when}",
    ]
    if owner:
        fields.append(f"*Owner*\n{owner}")
    context = [f"run `{RUN_ID}`"]
    link = luigid_task_url(task_id)
    if link and redact(task_id, phone_region=region) == task_id:
        context.append(f"<{link}|open in luigid>")
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*Parameters*\n```{params or '-'}```", 2900)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{error_type}*\n```{error}```"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
    ]
    text = f"{title}({params}) on {host}: {error_type}: {_clip(error, 300)}"
    return _redact_payload({"text": text, "blocks": blocks}, region)


def digest_message(
    pending: Sequence[PendingFailure], *, title: str, preface: Sequence[str] = ()
) -> dict[str, Any]:
    """One message listing failures that were not alerted individually and repeat counts."""
    region = config.AlertsConfig().phone_region
    lines = []
    for item in pending[:_DIGEST_LINES]:
        if item.alerted:
            lines.append(f"• {item.summary} (failed {item.count} times in this run, alerted once)")
        else:
            times = f" \u00d7{item.count}" if item.count > 1 else ""
            lines.append(f"• {item.summary}{times}")
    if len(pending) > _DIGEST_LINES:
        lines.append(f"… and {len(pending) - _DIGEST_LINES} more")
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": _clip(title, 150)}}]
    blocks.extend({"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, 2900)}} for text in preface)
    if lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), 2900)}})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"host {socket.gethostname()} · run `{RUN_ID}`"}]})
    text = title + ("\n" + "\n".join(lines[:10]) if lines else "")
    return _redact_payload({"text": _clip(text, 3000), "blocks": blocks}, region)


def luigid_task_url(task_id: str) -> str | None:
    """Link to the task's graph in the luigid visualiser, when a central scheduler is configured."""
    base = config.AlertsConfig().luigid_url
    if not base:
        core = luigi.interface.core()
        if core.local_scheduler:
            return None
        cfg = luigi.configuration.get_config()
        if core.scheduler_url:
            base = core.scheduler_url
        elif any(cfg.has_option("core", k) for k in ("default-scheduler-host", "default_scheduler_host")):
            base = f"http://{core.scheduler_host}:{core.scheduler_port}"
        else:
            return None  # luigi would use localhost:8082, which is no use to a reader in Slack
    return f"{base.rstrip('/')}/static/visualiser/index.html#tab=graph&taskId={quote(task_id, safe='')}"


# ---------------------------------------------------------------- helpers


def task_run_date(task: luigi.Task) -> str | None:
    """The task's run date (its `date` parameter, YYYY-MM-DD), or None for a task without one."""
    date = getattr(task, "date", None)
    return date.isoformat() if isinstance(date, dt.date) else None


def _params(task: luigi.Task) -> str:
    significant = task.to_str_params(only_significant=True, only_public=True)
    return ", ".join(f"{k}={v}" for k, v in significant.items())


def _ledger_path() -> Path:
    """<var_dir>/alerts/ledger.sqlite, resolved without creating anything (atexit must not litter)."""
    return config.var_dir(create=False) / "alerts" / "ledger.sqlite"


def _ledger() -> AlertLedger:
    alerts_dir()
    return AlertLedger(_ledger_path())


def _explain_exit(error_msg: str) -> str:
    """Luigi's 'died unexpectedly with exit code -9' plus what a negative code means."""
    match = re.search(r"exit code (-?\d+)", error_msg)
    if match and int(match.group(1)) < 0:
        return f"{error_msg} ({_signal_text(-int(match.group(1)))})"
    return error_msg


def _signal_text(signum: int) -> str:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    hint = ": the OOM killer or an operator" if signum == signal.SIGKILL else ""
    return f"killed by {name}{hint}"


def _describe_returncode(returncode: int | None) -> str:
    if returncode is None:
        return "no exit code (still running or lost)"
    if returncode < 0:
        return f"exit {returncode}, {_signal_text(-returncode)}"
    names = {v: k for k, v in luigi.retcodes.retcode().param_kwargs.items() if v}
    name = names.get(returncode)
    return f"exit {returncode}" + (f" ({name})" if name else "")


def _complete_error_from_stack() -> tuple[str, str]:
    """The exception complete() raised: Luigi passes none with DEPENDENCY_MISSING, but the worker
    holds its formatted traceback (tasks.luigi_internals.complete_traceback); read it, or say where to look."""
    trace = complete_traceback()
    if trace is None:
        return "CompleteCheckError", "complete() raised; the traceback is in the worker log"
    error_type, _, message = trace.strip().splitlines()[-1].partition(": ")
    return error_type.rsplit(".", 1)[-1], message


def _failure_count(pending: Sequence[PendingFailure]) -> str:
    deferred = sum(1 for p in pending if not p.alerted)
    repeated = len(pending) - deferred
    parts = []
    if deferred:
        parts.append(f"{deferred} more failed task(s) not alerted individually")
    if repeated:
        parts.append(f"{repeated} task(s) failed again")
    return ", ".join(parts)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def _redact_payload(payload: dict[str, Any], region: str) -> dict[str, Any]:
    """Every string of the payload through redact(): the final guard against secrets and PII."""
    extra = [os.environ.get(WEBHOOK_ENV, ""), SlackSettings.load().webhook_url]

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, extra_secrets=extra, phone_region=region)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: (v if k == "type" else walk(v)) for k, v in value.items()}
        return value

    return walk(payload)


register()
