"""The cron wrapper as cron runs it: `python -m tasks cron` subprocesses on the embedded warehouse.

Overlap (two real processes), disabled, past end_date, catch-up of missed days, a failing day,
a timeout, an invalid schedule, and the crontab line (executed through sh).
"""

from __future__ import annotations

import datetime as dt
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tasks.run_all import RunAll
from tests.conftest import REPO
from tests.e2e.conftest import run_cron, run_summary_alerts, runs, start_cron

D1 = dt.date(2026, 3, 2)

pytestmark = pytest.mark.slow  # real subprocesses: luigi runs, the wrapper, luigid


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the first run ended early with {proc.returncode}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_an_overlapping_invocation_exits_already_running(slow_schedule, subprocess_env, var_path, tmp_path) -> None:
    slow_schedule.set("SlowDay", "seconds", 5)
    first = start_cron(subprocess_env, "--date", str(D1), log=tmp_path / "first.log")
    try:
        wait_for(var_path / "slow" / f"{D1}.started", first)
        second = run_cron(subprocess_env, "--date", str(D1 + dt.timedelta(days=1)))
        assert second.returncode == 10, second.stderr[-2000:]
        assert "already_running" in second.stderr
        assert first.poll() is None  # the first run was not disturbed
        assert not (var_path / "slow" / f"{D1 + dt.timedelta(days=1)}.started").exists()
    finally:
        assert first.wait(timeout=60) == 0, (tmp_path / "first.log").read_text()[-2000:]
    assert (var_path / "slow" / f"{D1}.done").exists()
    assert [(r["status"], r["exit_code"]) for r in runs(var_path)] == [("already_running", 10), ("ok", 0)]
    assert run_summary_alerts(var_path) == []  # an overlap is not a failure

    # the slot is free again once the first run ended
    third = run_cron(subprocess_env, "--date", str(D1 + dt.timedelta(days=1)))
    assert third.returncode == 0, third.stderr[-2000:]


def test_a_killed_wrapper_leaves_its_slot_taken_while_its_run_goes_on(
        slow_schedule, subprocess_env, var_path, tmp_path) -> None:
    # the slot was a lock only the wrapper held: SIGKILL the wrapper and luigi ran on while a second invocation
    # took the slot and ran beside it
    slow_schedule.set("SlowDay", "seconds", 5)
    first = start_cron(subprocess_env, "--date", str(D1), log=tmp_path / "first.log")
    wait_for(var_path / "slow" / f"{D1}.started", first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = run_cron(subprocess_env, "--date", str(D1 + dt.timedelta(days=1)))
    assert second.returncode == 10, second.stderr[-2000:]
    assert "already_running" in second.stderr
    deadline = time.monotonic() + 60  # the orphaned run finishes; then the slot is free again
    while not (var_path / "slow" / f"{D1}.done").exists():
        assert time.monotonic() < deadline, "the first run never finished"
        time.sleep(0.1)
    for _ in range(100):
        third = run_cron(subprocess_env, "--date", str(D1 + dt.timedelta(days=1)))
        if third.returncode != 10:
            break
        time.sleep(0.2)
    assert third.returncode == 0, third.stderr[-2000:]


def test_task_processes_that_outlive_a_killed_luigi_are_stopped(
        slow_schedule, subprocess_env, var_path, tmp_path) -> None:
    # luigi's parent killed (OOM, an operator): its forked task process ran on and wrote its output after the
    # run had been recorded as killed, beside whatever run took the slot next
    slow_schedule.set("SlowDay", "seconds", 5).set("schedule", "workers", 2).set("schedule", "kill_grace_seconds", 2)
    first = start_cron(subprocess_env, "--date", str(D1), log=tmp_path / "first.log")
    wait_for(var_path / "slow" / f"{D1}.started", first)
    (luigi_parent,) = psutil.Process(first.pid).children()
    group = [p.pid for p in luigi_parent.children(recursive=True)]
    assert group, "workers = 2: the task runs in a forked process"
    luigi_parent.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == 128 + signal.SIGKILL
    assert all(gone(pid) for pid in group)
    time.sleep(6)
    assert not (var_path / "slow" / f"{D1}.done").exists(), "the task process was stopped with its run"


def test_two_active_runs_allowed_with_max_active_runs_2(slow_schedule, subprocess_env, var_path, tmp_path) -> None:
    slow_schedule.set("SlowDay", "seconds", 4).set("schedule", "max_active_runs", 2)
    first = start_cron(subprocess_env, "--date", str(D1), log=tmp_path / "first.log")
    wait_for(var_path / "slow" / f"{D1}.started", first)
    second = run_cron(subprocess_env, "--date", str(D1 + dt.timedelta(days=1)))
    assert second.returncode == 0, second.stderr[-2000:]
    assert first.wait(timeout=60) == 0


def test_disabled_does_nothing(slow_schedule, subprocess_env, var_path) -> None:
    slow_schedule.set("schedule", "enabled", "false")
    result = run_cron(subprocess_env, "--date", str(D1))
    assert result.returncode == 0
    assert "nothing to do: [schedule] enabled = false" in result.stderr
    assert not (var_path / "slow").exists() and not (var_path / "cron").exists()
    assert [r["status"] for r in runs(var_path)] == ["skipped"]


def test_past_end_date_and_before_start_date_do_nothing(slow_schedule, subprocess_env, var_path) -> None:
    slow_schedule.set("schedule", "end_date", str(D1))
    after = run_cron(subprocess_env, "--date", str(D1 + dt.timedelta(days=1)))
    assert after.returncode == 0 and f"after [schedule] end_date {D1}" in after.stderr
    before = run_cron(subprocess_env, "--date", "2025-12-31")
    assert before.returncode == 0 and "before [schedule] start_date 2026-01-01" in before.stderr
    assert not (var_path / "slow").exists()
    # without --date the run date comes from cron_expression in the time zone: today is past end_date
    slow_schedule.set("schedule", "timezone", "Pacific/Kiritimati")
    today = run_cron(subprocess_env)
    assert today.returncode == 0 and "after [schedule] end_date" in today.stderr
    assert [r["status"] for r in runs(var_path)] == ["skipped"] * 3


def test_catchup_runs_the_days_missed_since_the_last_complete_one(
    small_day, luigi_cfg, subprocess_env, var_path
) -> None:
    d0, d1, d4 = D1 - dt.timedelta(days=1), D1, D1 + dt.timedelta(days=3)
    first = run_cron(subprocess_env, "--date", str(d1))
    assert first.returncode == 0, first.stdout[-3000:]
    assert RunAll(date=d1).complete() and not RunAll(date=d0).complete()

    luigi_cfg.set("schedule", "catchup", "true").set("schedule", "max_catchup_days", 7)
    caught_up = run_cron(subprocess_env, "--date", str(d4))
    assert caught_up.returncode == 0, caught_up.stdout[-3000:]
    missed = [d1 + dt.timedelta(days=i) for i in (1, 2, 3)]
    assert all(RunAll(date=d).complete() for d in missed)
    assert not RunAll(date=d0).complete()  # before the last complete day: not a missed day
    record = runs(var_path)[-1]
    assert record["dates"] == [str(d) for d in missed] and record["status"] == "ok"
    assert record["not_run"] == [] and "RunAll --date 2026-03-05" in record["command"]
    for d in missed:  # each day's sends really went out
        assert (var_path / "campaigns" / str(d) / "demo" / "email-all.json").exists()


def test_a_failing_day_exits_task_failed_with_one_run_summary(small_day, subprocess_env, var_path) -> None:
    good = run_cron(subprocess_env, "--date", str(D1))
    assert good.returncode == 0, good.stdout[-3000:]
    small_day.execute("DELETE FROM raw_data.session_timestamp")  # the next MAU build drops every row
    bad = run_cron(subprocess_env, "--date", str(D1 + dt.timedelta(days=1)))
    assert bad.returncode == 30, bad.stdout[-3000:] + bad.stderr[-2000:]
    record = runs(var_path)[-1]
    assert (record["status"], record["exit_code"], record["luigi_returncode"]) == ("task_failed", 30, 30)
    alerts = run_summary_alerts(var_path)
    assert len(alerts) == 1
    text = str(alerts[0]["message"])
    assert "exit 30 (task_failed)" in text and "1 failed:" in text and "StageTable(date=2026-03-03" in text


def test_a_run_past_timeout_is_killed_and_alerted(slow_schedule, subprocess_env, var_path) -> None:
    slow_schedule.set("SlowDay", "seconds", 120).set("schedule", "timeout_seconds", 3)
    slow_schedule.set("schedule", "kill_grace_seconds", 2)
    started = time.monotonic()
    result = run_cron(subprocess_env, "--date", str(D1), timeout=90)
    elapsed = time.monotonic() - started
    assert result.returncode == 124, result.stderr[-2000:]
    assert elapsed < 60  # not the task's 120 s
    task_pid = int((var_path / "slow" / f"{D1}.started").read_text())
    assert gone(task_pid)  # the forked task process went with its process group
    assert not (var_path / "slow" / f"{D1}.done").exists()
    record = runs(var_path)[-1]
    assert record["status"] == "timeout" and record["exit_code"] == 124
    alerts = run_summary_alerts(var_path)
    assert len(alerts) == 1 and "timed out after 3 s" in str(alerts[0]["message"])


def test_sigterm_to_the_wrapper_stops_the_run_and_alerts(slow_schedule, subprocess_env, var_path, tmp_path) -> None:
    slow_schedule.set("SlowDay", "seconds", 120)
    wrapper = start_cron(subprocess_env, "--date", str(D1), log=tmp_path / "wrapper.log")
    wait_for(var_path / "slow" / f"{D1}.started", wrapper)
    wrapper.send_signal(signal.SIGTERM)
    assert wrapper.wait(timeout=60) == 128 + signal.SIGTERM, (tmp_path / "wrapper.log").read_text()[-2000:]
    assert gone(int((var_path / "slow" / f"{D1}.started").read_text()))
    assert runs(var_path)[-1]["status"] == "killed_by_SIGTERM"
    assert len(run_summary_alerts(var_path)) == 1


def test_a_config_problem_stops_the_wrapper_before_luigi(slow_schedule, subprocess_env, var_path) -> None:
    slow_schedule.set("segment", "input_path", "/data/segments.csv")  # typo: [segment] for [segments]
    result = run_cron(subprocess_env)
    assert result.returncode == 2
    assert "unknown section; did you mean 'segments'?" in result.stderr
    (record,) = runs(var_path)
    assert record["status"] == "config_error" and "[segment]" in record["reason"]
    assert "command" not in record  # luigi was never started
    assert len(run_summary_alerts(var_path)) == 1


def test_an_invalid_schedule_exits_2_and_alerts(slow_schedule, subprocess_env, var_path) -> None:
    slow_schedule.set("schedule", "timezone", "Mars/Olympus")
    result = run_cron(subprocess_env)
    assert result.returncode == 2 and "Mars/Olympus" in result.stderr
    assert len(run_summary_alerts(var_path)) == 1


def test_crontab_line_runs_the_wrapper(slow_schedule, subprocess_env, var_path) -> None:
    slow_schedule.set("schedule", "cron_expression", "30 6 * * 1-5").set("schedule", "enabled", "false")
    out = subprocess.run([sys.executable, "-m", "tasks", "crontab"], cwd="/", env=subprocess_env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    fields = line.split(" ", 5)
    assert fields[:5] == ["30", "6", "*", "*", "1-5"]
    command = fields[5]
    log_file = var_path / "log" / "cron.log"
    assert command.startswith(f"cd {REPO} && ")
    assert f"{Path(sys.executable).absolute()} -m tasks cron >> {log_file} 2>&1" in command
    # what cron would run, in a shell with an almost empty environment
    env = {"PATH": "/usr/bin:/bin", "HOME": str(var_path)}
    ran = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert "nothing to do: [schedule] enabled = false" in log_file.read_text()
    assert "&& umask 077 &&" in command and stat.S_IMODE(log_file.stat().st_mode) == 0o600  # the log is private

    slow_schedule.set("schedule", "cron_expression", "@daily")
    daily = subprocess.run([sys.executable, "-m", "tasks", "crontab"], cwd="/", env=subprocess_env,
                           capture_output=True, text=True, timeout=60)
    assert daily.stdout.startswith("@daily cd ") and shlex.split(daily.stdout)[-3:] == [">>", str(log_file), "2>&1"]


def test_luigi_reads_the_project_config_from_any_directory(tmp_path, subprocess_env) -> None:
    """Run from a folder without luigi.cfg and without LUIGI_CONFIG_PATH: [retcode] still applies."""
    env = {k: v for k, v in subprocess_env.items() if k != "LUIGI_CONFIG_PATH"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cmd = [sys.executable, "-m", "luigi", "--module", "tasks", "StageTable", "--table", "analytics.not_in_specs",
           "--local-scheduler"]
    done = subprocess.run(cmd, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 40, done.stderr[-2000:]  # [retcode] unhandled_exception (0 without the config)
