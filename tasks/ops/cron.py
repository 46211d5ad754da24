"""The cron wrapper: run the day's pipeline as a `luigi` subprocess, on schedule, once at a time.

`python -m tasks cron [--date D]` (console script `tasks-cron`) is what the crontab line of
`python -m tasks crontab` calls. One invocation:

1. computes the run date: the date of the latest tick of `cron_expression` at or before now,
   in `timezone` (or `--date`); outside `start_date`..`end_date`, or with `enabled = false`,
   it logs why and exits 0; then it runs `python -m tasks check-config` (as a subprocess: the
   check spans every wing) and on any problem exits EXIT_CONFIG without starting luigi;
2. takes one of `max_active_runs` lock slots (fcntl locks on <var_dir>/cron/cron-slot-N.lock,
   inherited by luigi's process group and released by the kernel when its last process dies;
   with `[state] backend = postgres`, advisory
   locks every host shares, released when the session ends); none free: exits
   `[retcode] already_running`;
3. with `catchup`, looks back from the run date (at most `max_catchup_days`, never before
   `start_date`) for the last day whose task is complete and runs every day after it, oldest
   first, one luigi run per day, stopping at the first day that fails; the next invocation
   starts again after the last complete day. Not Luigi's RangeDaily, which puts all the days in
   one graph and runs them at once. The ELT would not mind: every build stages into its own
   table, and a day older than the one already published ends `superseded` instead of
   publishing (tasks/elt/). What does mind: with `[schedule] depends_on_past`, a day must not
   start before the day before it is complete; a channel's rate limit is a bucket per process
   unless `[state] backend = postgres` or the send is sharded, so two days' sends of one channel
   in two task processes would each take the provider's whole rate; and the frequency cap counts
   earlier sends, so days in order let the older day's message through and cap the later ones,
   where days at once would race for each customer;
4. runs `luigi --module tasks RunAll --date D --workers N` in its own process group, against
   the central scheduler when one is configured, else `--local-scheduler`, so that a crash,
   SIGKILL or OOM kill of luigi is seen here as an exit status;
5. kills the process group once the invocation has run `timeout_seconds` (all its days
   together; SIGTERM, then SIGKILL after `kill_grace_seconds`) and exits EXIT_TIMEOUT; a
   SIGTERM/SIGINT to the wrapper is passed on to the group;
6. logs a one-line run summary and appends it as JSON to <var_dir>/runs/runs.jsonl; on a
   non-zero exit (other than already_running) sends one run-summary alert
   (tasks.ops.alerts.send_run_summary).

Exit codes: Luigi's [retcode] of the run (0, 10, 20, 25, 30, 35, 40), EXIT_TIMEOUT (124, as
coreutils `timeout`), 128 + N when luigi was killed by signal N (as a shell reports it), and
EXIT_CONFIG (2) when [schedule] or any other part of the configuration is invalid. Reads [schedule], [retcode], [core]
(scheduler host/url) and [paths].
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import importlib
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import luigi.configuration
import luigi.retcodes
import luigi.task_register
from croniter import croniter

from tasks import config
from tasks.errors import ConfigError
from tasks.files import append_json_line, private_dir
from tasks.params import run_date_at
from tasks.state import locks

logger = logging.getLogger(__name__)

EXIT_CONFIG = 2
EXIT_TIMEOUT = 124
TAIL_LINES = 40


@dataclass(frozen=True)
class Schedule:
    """[schedule], parsed and checked."""

    enabled: bool
    cron_expression: str
    start_date: dt.date
    end_date: dt.date | None
    timezone: ZoneInfo
    catchup: bool
    max_catchup_days: int
    max_active_runs: int
    timeout_seconds: int
    kill_grace_seconds: float
    task: str
    module: str
    workers: int
    scheduler_url: str
    log_file: str


def schedule_problems(cfg: config.ScheduleConfig) -> list[tuple[str, str]]:
    """(key, what is wrong) for every value of [schedule] that luigi's types accept but the wrapper cannot use
    (check-config reports them all; load_schedule refuses them)."""
    problems = []
    if not croniter.is_valid(cfg.cron_expression):
        problems.append(("cron_expression", f"{cfg.cron_expression!r} is not a cron expression or macro"))
    try:
        ZoneInfo(cfg.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(("timezone", f"{cfg.timezone!r} is not an IANA time zone"))
    if cfg.end_date.strip():
        try:
            dt.date.fromisoformat(cfg.end_date.strip())
        except ValueError:
            problems.append(("end_date", f"{cfg.end_date!r} is not YYYY-MM-DD"))
    problems.extend((key, "must be at least 1") for key in ("max_catchup_days", "max_active_runs", "workers")
                    if getattr(cfg, key) < 1)
    return problems


def load_schedule() -> Schedule:
    """The [schedule] section; ConfigError names every key that is wrong."""
    try:
        cfg = config.ScheduleConfig()
    except ValueError as exc:  # luigi's parameter parsing: a malformed date, number or boolean
        raise ConfigError(f"[schedule] {exc}") from None
    problems = schedule_problems(cfg)
    if problems:
        raise ConfigError("; ".join(f"[schedule] {key} {what}" for key, what in problems))
    tz = ZoneInfo(cfg.timezone)
    end = dt.date.fromisoformat(cfg.end_date.strip()) if cfg.end_date.strip() else None
    return config.settings(
        Schedule, cfg, end_date=end, timezone=tz, timeout_seconds=max(cfg.timeout_seconds, 0),
        scheduler_url=cfg.scheduler_url.strip(),
    )


# ---------------------------------------------------------------- dates


def scheduled_date(sched: Schedule, now: dt.datetime | None = None) -> dt.date:
    """The date, in the schedule's time zone, of the latest cron tick at or before `now`: the same rule
    as every other default run date (tasks.params.default_run_date)."""
    return run_date_at(sched.cron_expression, sched.timezone, now or dt.datetime.now(dt.UTC))


def outside_window(sched: Schedule, day: dt.date) -> str | None:
    """Why `day` is not to be run (before start_date, after end_date), or None."""
    if day < sched.start_date:
        return f"{day} is before [schedule] start_date {sched.start_date}"
    if sched.end_date and day > sched.end_date:
        return f"{day} is after [schedule] end_date {sched.end_date}"
    return None


def days_to_run(sched: Schedule, day: dt.date, is_complete: Callable[[dt.date], bool]) -> list[dt.date]:
    """The days one invocation runs, oldest first: `day`, plus with catchup the days missed before it.

    Looks back from `day` (at most max_catchup_days days in all, never before start_date) and
    stops at the first complete day: the days after it are the ones to run.
    """
    if not sched.catchup:
        return [day]
    earliest = max(sched.start_date, day - dt.timedelta(days=sched.max_catchup_days - 1))
    missing: list[dt.date] = []
    current = day
    while current >= earliest and not is_complete(current):
        missing.append(current)
        current -= dt.timedelta(days=1)
    return sorted(missing) or [day]


def task_completeness(sched: Schedule) -> Callable[[dt.date], bool]:
    """`day -> <task>(date=day).complete()` for the configured task (importing its module)."""
    try:
        importlib.import_module(sched.module)
        task_cls = luigi.task_register.Register.get_task_cls(sched.task)
    except (ImportError, luigi.task_register.TaskClassException) as exc:
        raise ConfigError(f"[schedule] module/task {sched.module}.{sched.task} cannot be loaded: {exc}") from None

    def is_complete(day: dt.date) -> bool:
        try:
            return bool(task_cls(date=day).complete())
        except Exception as exc:  # noqa: BLE001 - luigi's run will report the real error with its retcode
            logger.warning("cron: cannot tell whether %s(%s) is complete (%s); counting it as missing",
                           sched.task, day, type(exc).__name__)
            return False

    return is_complete


# ---------------------------------------------------------------- the luigi command


def scheduler_args(sched: Schedule) -> tuple[list[str], str]:
    """(luigi arguments, description) for the scheduler: [schedule] url, [core] defaults, or local."""
    if sched.scheduler_url:
        return ["--scheduler-url", sched.scheduler_url], sched.scheduler_url
    cfg = luigi.configuration.get_config()
    for key in ("default_scheduler_url", "default-scheduler-url"):
        if cfg.get("core", key, ""):
            return [], cfg.get("core", key)
    for key in ("default_scheduler_host", "default-scheduler-host"):
        if cfg.get("core", key, ""):
            port = cfg.get("core", "default_scheduler_port", "") or cfg.get("core", "default-scheduler-port", "8082")
            return [], f"http://{cfg.get('core', key)}:{port}"
    return ["--local-scheduler"], "local"


def luigi_command(sched: Schedule, day: dt.date, lock_dir: Path) -> list[str]:
    """`python -m luigi --module M <task> --date D --workers N` plus the scheduler arguments."""
    cmd = [sys.executable, "-m", "luigi", "--module", sched.module, sched.task, "--date", day.isoformat(),
           "--workers", str(sched.workers), "--lock-pid-dir", str(lock_dir)]
    return cmd + scheduler_args(sched)[0]


# ---------------------------------------------------------------- lock slots


@contextlib.contextmanager
def run_slot(directory: Path, slots: int) -> Iterator[tuple[int, int | None] | None]:
    """Hold the first free of `slots` run slots; yields (its number, the lock's descriptor for luigi to inherit,
    None for an advisory lock), or None when all are taken. Slots are lock files under `directory` (this host),
    or advisory locks with [state] backend = postgres (every host)."""
    with locks.first_free([f"cron-slot-{number}" for number in range(slots)], directory) as taken:
        yield None if taken is None else (taken[0], taken[1].fd)


# ---------------------------------------------------------------- running luigi


@dataclass
class Outcome:
    """How the luigi process ended."""

    returncode: int | None  # as Popen reports it: negative = killed by that signal
    timed_out: bool = False
    tail: list[str] = field(default_factory=list)


def run_process(cmd: Sequence[str], timeout: float, grace: float, *, cwd: Path,
                keep_fds: Sequence[int] = ()) -> Outcome:
    """Run `cmd` in a new process group, copying its output to ours; kill the group on timeout, and whatever is
    left of it once `cmd` has exited (SIGTERM, `grace`, SIGKILL). `keep_fds` are inherited by the group (the run
    slot's lock: held while any process of the run lives, even when the wrapper itself is killed)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, pass_fds=tuple(keep_fds))
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    copier = threading.Thread(target=_copy_output, args=(proc, tail), daemon=True)
    copier.start()
    outcome = Outcome(returncode=None)
    # a SIGTERM/SIGINT to the wrapper (shutdown, Ctrl-C) is passed on to the group it started
    # apart from itself; luigi then exits by that signal and the run is recorded and alerted
    forwarded = {}
    if threading.current_thread() is threading.main_thread():
        forwarded = {sig: signal.signal(sig, lambda signum, _frame: _kill_group(proc.pid, signum))
                     for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        proc.wait(timeout=timeout or None)
    except subprocess.TimeoutExpired:
        outcome.timed_out = True
        logger.error("cron: luigi ran past [schedule] timeout_seconds; stopping its process group %d", proc.pid)
        _kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
    # forked task processes that outlived their parent (a timeout, or luigi itself killed: OOM, an operator)
    # must not go on after the run is recorded, nor beside the next run once the slot is free
    _stop_group(proc.pid, grace)
    for sig, previous in forwarded.items():
        signal.signal(sig, previous)
    copier.join(timeout=5)
    outcome.returncode = proc.returncode
    outcome.tail = list(tail)
    return outcome


def _copy_output(proc: subprocess.Popen, tail: collections.deque[str]) -> None:
    assert proc.stdout is not None
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    for raw in proc.stdout:
        if out is not None:
            out.write(raw)
            out.flush()
        tail.append(raw.decode("utf-8", "replace").rstrip("\n"))


def _stop_group(pgid: int, grace: float) -> None:
    """SIGTERM whatever is left of the group, wait up to `grace` for it to go, then SIGKILL it."""
    if not _group_alive(pgid):
        return
    logger.warning("cron: processes of the run outlived luigi; stopping process group %d", pgid)
    _kill_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _kill_group(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def exit_code(outcome: Outcome) -> int:
    """The wrapper's exit code for how luigi ended (see the module docstring)."""
    if outcome.timed_out:
        return EXIT_TIMEOUT
    assert outcome.returncode is not None
    return 128 - outcome.returncode if outcome.returncode < 0 else outcome.returncode


def describe_code(code: int) -> str:
    """A name for an exit code: the [retcode] key, timeout, killed by SIG..., ok."""
    if code == 0:
        return "ok"
    if code == EXIT_TIMEOUT:
        return "timeout"
    if code == EXIT_CONFIG:
        return "config_error"
    if code > 128:
        with contextlib.suppress(ValueError):
            return f"killed_by_{signal.Signals(code - 128).name}"
    codes = luigi.retcodes.retcode()
    for name in ("already_running", "missing_data", "not_run", "task_failed", "scheduling_error",
                 "unhandled_exception"):
        if getattr(codes, name) == code:
            return name
    return f"exit_{code}"


# ---------------------------------------------------------------- run records


def runs_file() -> Path:
    return config.var_dir() / "runs" / "runs.jsonl"


def record_run(summary: dict[str, object]) -> None:
    """Log the one-line summary and append it to <var_dir>/runs/runs.jsonl (one write, O_APPEND)."""
    days = summary.get("dates")
    dates = ",".join(map(str, days)) if isinstance(days, list) else ""
    logger.info("cron run: status=%s exit=%s dates=%s task=%s scheduler=%s duration=%.1fs%s",
                summary["status"], summary["exit_code"], dates or "-", summary.get("task"),
                summary.get("scheduler", "-"), summary.get("duration_s", 0.0),
                f" ({summary['reason']})" if summary.get("reason") else "")
    append_json_line(runs_file(), summary)


# ---------------------------------------------------------------- the wrapper


def cron(run_date: dt.date | None = None, now: dt.datetime | None = None) -> int:
    """One cron invocation (see the module docstring); returns the process exit code."""
    started = dt.datetime.now(dt.UTC)
    base: dict[str, object] = {"kind": "cron", "started_at": started.isoformat(timespec="seconds"),
                               "host": socket.gethostname(), "pid": os.getpid()}
    try:
        sched = load_schedule()
    except ConfigError as exc:
        return _config_error(base, started, f"invalid [schedule]: {exc}")
    base["task"] = sched.task
    day = run_date or scheduled_date(sched, now)
    base["run_date"] = day.isoformat()
    reason = "[schedule] enabled = false" if not sched.enabled else outside_window(sched, day)
    if reason:
        logger.info("cron: nothing to do: %s", reason)
        record_run({**base, "status": "skipped", "exit_code": 0, "reason": reason})
        return 0
    problems = config_problems()
    if problems:
        return _config_error(base, started, problems)

    state = config.var_dir() / "cron"
    with run_slot(state, sched.max_active_runs) as slot:
        if slot is None:
            code = luigi.retcodes.retcode().already_running
            reason = f"all {sched.max_active_runs} run slot(s) are taken by other invocations"
            logger.warning("cron: %s; exiting %d (already_running)", reason, code)
            record_run({**base, "status": "already_running", "exit_code": code, "reason": reason})
            return code
        slot_number, fd = slot
        try:
            days = days_to_run(sched, day, task_completeness(sched)) if sched.catchup else [day]
        except ConfigError as exc:
            return _config_error(base, started, str(exc))
        scheduler = scheduler_args(sched)[1]
        clock = time.monotonic()
        done: list[str] = []
        for number, current in enumerate(days, 1):
            cmd = luigi_command(sched, current, state / "luigi-pids")
            logger.info("cron: slot %d, day %d/%d: %s %s on scheduler %s: %s", slot_number, number, len(days),
                        sched.task, current, scheduler, shlex.join(cmd))
            budget = sched.timeout_seconds - (time.monotonic() - clock) if sched.timeout_seconds else 0
            outcome = run_process(cmd, max(budget, 0.1) if sched.timeout_seconds else 0, sched.kill_grace_seconds,
                                  cwd=config.PROJECT_ROOT, keep_fds=[fd] if fd is not None else [])
            done.append(current.isoformat())
            if exit_code(outcome) != 0:
                break
        duration = time.monotonic() - clock
    code = exit_code(outcome)
    finished = dt.datetime.now(dt.UTC)
    if code not in (0, luigi.retcodes.retcode().already_running):
        note = f"timed out after {sched.timeout_seconds} s; process group killed\n" if outcome.timed_out else ""
        _alert(cmd, outcome.returncode, started, note + "\n".join(outcome.tail), finished)
    record_run({**base, "status": describe_code(code), "exit_code": code, "luigi_returncode": outcome.returncode,
                "dates": done, "not_run": [d.isoformat() for d in days[len(done):]], "scheduler": scheduler,
                "command": shlex.join(cmd), "finished_at": finished.isoformat(timespec="seconds"),
                "duration_s": round(duration, 2)})
    return code


def config_problems() -> str:
    """What `python -m tasks check-config` reports (run as the luigi run will be: same cwd and
    environment), or "" when the configuration is fine."""
    done = subprocess.run([sys.executable, "-m", "tasks", "check-config"], cwd=config.PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    return "" if done.returncode == 0 else (done.stdout + done.stderr).strip()


def _config_error(base: dict[str, object], started: dt.datetime, reason: str) -> int:
    """Log, alert and record a configuration error; the wrapper then exits EXIT_CONFIG."""
    from tasks.ops.redaction import redact

    reason = redact(reason)  # a driver's message may repeat a DSN with its password
    logger.error("cron: not running: %s", reason)
    _alert(["python", "-m", "tasks", "cron"], EXIT_CONFIG, started, reason)
    record_run({**base, "status": "config_error", "exit_code": EXIT_CONFIG, "reason": reason})
    return EXIT_CONFIG


def _alert(cmd: Sequence[str], returncode: int | None, started: dt.datetime, tail: str,
           finished: dt.datetime | None = None) -> None:
    from tasks.ops.alerts import send_run_summary  # imported late: registering handlers is not needed before

    send_run_summary(list(cmd), returncode, started_at=started, finished_at=finished, log_tail=tail)


# ---------------------------------------------------------------- crontab


def crontab_line(sched: Schedule, python: str | None = None) -> str:
    """The crontab entry for the schedule: absolute venv python, project root, log file."""
    python = str(Path(python or sys.executable).absolute())
    log_file = config.resolve_path(sched.log_file) if sched.log_file else config.var_dir() / "log" / "cron.log"
    private_dir(log_file.parent)
    env = "".join(f"{name}={shlex.quote(os.environ[name])} " for name in ("LUIGI_CONFIG_PATH", "TASKS_VAR_DIR")
                  if os.environ.get(name))
    # umask 077: the log file the shell creates is owner-only like everything under var/
    command = (f"cd {shlex.quote(str(config.PROJECT_ROOT))} && umask 077 && {env}{shlex.quote(python)} -m tasks cron "
               f">> {shlex.quote(str(log_file))} 2>&1")
    return f"{sched.cron_expression} {command.replace('%', chr(92) + '%')}"  # % ends a crontab command
