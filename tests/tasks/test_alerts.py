"""Failure alerts from real Luigi runs (luigi.build in this process, or the `luigi` CLI in a
subprocess) to a real HTTP server playing Slack: one test per failure path, redaction, storm
control, rate limit across forked task processes, and dead or slow webhooks."""

from __future__ import annotations

import datetime
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import luigi

from tests.fakes import failing_tasks as ft
from tests.fakes.slack import Received
from tests.fakes.timing import max_in_window

REPO = Path(__file__).resolve().parents[2]


def build(*tasks: luigi.Task, workers: int = 1) -> bool:
    return luigi.build(list(tasks), local_scheduler=True, workers=workers, log_level="WARNING")


def run_luigi(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The `luigi` CLI on the fake tasks, in its own process (its exit runs the end-of-run digest)."""
    cmd = [sys.executable, "-m", "luigi", "--module", "tests.fakes.failing_tasks", *args, "--local-scheduler",
           "--log-level", "WARNING"]
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def assert_failed_run(result: subprocess.CompletedProcess[str]) -> None:
    """The run ended on its own with failed tasks: exit 0, or 30 (task_failed) when [retcode] is set."""
    assert result.returncode in (0, 30), result.stderr[-2000:]


def block_text(message: Received) -> str:
    return json.dumps(message.payload["blocks"])


# ---------------------------------------------------------------- each failure path


def test_failure_in_the_worker_process_sends_one_well_formed_alert(slack, luigi_cfg, monkeypatch):
    monkeypatch.setenv("OWNER", "@data-oncall")
    assert build(ft.RaisesError(name="solo", message="disk full on /data")) is False
    (msg,) = slack.wait_for(1)
    time.sleep(0.3)
    assert len(slack.received) == 1
    assert "RaisesError" in msg.payload["text"] and "RuntimeError" in msg.payload["text"]
    blocks = block_text(msg)
    assert "name=solo" in blocks and "disk full on /data" in blocks
    assert "message=" not in blocks  # insignificant parameter left out
    assert "@data-oncall" in blocks and "Run date" in blocks and "Host" in blocks
    assert msg.payload["blocks"][0]["type"] == "header"


def test_failed_validation_gives_exactly_one_alert_naming_the_checks(slack):
    assert build(ft.FailsValidation(date=datetime.date(2024, 1, 5)), workers=2) is False
    (msg,) = slack.wait_for(1)
    assert "*Run date*\\n2024-01-05" in block_text(msg), "the task's date, not the wall clock"
    time.sleep(0.3)
    assert len(slack.received) == 1
    assert "DataValidationError" in msg.payload["text"] and "date=2024-01-05" in block_text(msg)
    assert "non_empty: 0 rows" in block_text(msg) and "row_drop: 120 rows" in block_text(msg)


def test_failures_in_forked_task_processes_alert_once_each(slack):
    assert build(ft.ManyFailures(count=2), workers=2) is False
    msgs = slack.wait_for(2)
    time.sleep(0.3)
    assert len(slack.received) == 2
    assert sorted("name=t0" in block_text(m) for m in msgs) == [False, True]


def test_sigkilled_task_process_alerts_from_the_parent_worker(slack):
    assert build(ft.KillsItself(), workers=2) is False
    (msg,) = slack.wait_for(1)
    assert "process failure" in msg.payload["text"]
    assert "SIGKILL" in block_text(msg) and "exit code -9" in block_text(msg)


def test_timeout_alerts(slack):
    started = time.monotonic()
    assert build(ft.SleepsPastTimeout()) is False
    assert time.monotonic() - started < 20
    (msg,) = slack.wait_for(1)
    assert "timeout" in msg.payload["text"] and "timed out after 1 seconds" in block_text(msg)


def test_requires_raising_alerts_as_broken_task_with_pii_masked(slack):
    assert build(ft.BrokenRequires()) is False
    (msg,) = slack.wait_for(1)
    assert "broken task" in msg.payload["text"] and "ValueError" in msg.payload["text"]
    assert "requires() exploded" in block_text(msg)
    assert "alice@example.com" not in msg.body and "a***@example.com" in msg.body


def test_complete_raising_alerts_with_its_exception(slack):
    assert build(ft.BrokenComplete()) is False
    (msg,) = slack.wait_for(1)
    assert "complete() failed" in msg.payload["text"]
    assert "ConnectionError" in msg.payload["text"] and "warehouse unreachable" in block_text(msg)


# ---------------------------------------------------------------- no secrets, no PII


def test_alert_carries_no_secret_and_no_pii(slack, monkeypatch, subprocess_env):
    key = "SG.aVeryRealLookingKey_123.abcdefghijklmnopqrstuvwxyz0123456789"
    subprocess_env["SENDGRID_API_KEY"] = key
    subprocess_env["SLACK_WEBHOOK_URL"] = slack.url
    result = run_luigi(subprocess_env, "RaisesWithSecrets", "--workers", "2")
    assert_failed_run(result)
    (msg,) = slack.wait_for(1)
    body = msg.body
    for secret in (key, key[3:20], "hunter2pass", "alice.smith@example.com", "202-555-0143", "2025550143",
                   "fakehooksecret0123"):
        assert secret not in body, secret
    assert "a***@example.com" in body and "+1********43" in body and "[REDACTED]" in body
    assert "RaisesWithSecrets" in msg.payload["text"]


# ---------------------------------------------------------------- storm control and rate limit


def test_retries_in_one_run_give_one_alert_and_a_count(slack, luigi_cfg, subprocess_env):
    luigi_cfg.set("worker", "keep_alive", "true")
    luigi_cfg.set("worker", "wait_interval", 0.1)
    luigi_cfg.set("worker", "wait_jitter", 0.1)
    luigi_cfg.set("scheduler", "retry_delay", 0.2)
    subprocess_env["SLACK_WEBHOOK_URL"] = slack.url
    result = run_luigi(subprocess_env, "AlwaysFailsRetried", "--name", "flaky")
    assert_failed_run(result)
    attempts = result.stderr.count("failed    AlwaysFailsRetried")
    assert attempts == 3, result.stderr[-3000:]
    msgs = slack.wait_for(2)
    time.sleep(0.3)
    assert len(slack.received) == 2  # the alert for the first failure, then the end-of-run digest
    first, digest = msgs
    assert "AlwaysFailsRetried" in first.payload["text"] and "digest" not in first.payload["text"]
    assert "digest" in digest.payload["text"] and "failed 3 times in this run" in block_text(digest)


def test_after_the_cap_the_rest_go_into_one_digest(slack, luigi_cfg, subprocess_env):
    luigi_cfg.set("slack", "max_alerts_per_run", 2)
    subprocess_env["SLACK_WEBHOOK_URL"] = slack.url
    result = run_luigi(subprocess_env, "ManyFailures", "--count", "5", "--workers", "3")
    assert_failed_run(result)
    msgs = slack.wait_for(3)
    time.sleep(0.3)
    assert len(slack.received) == 3
    individual = [m for m in msgs if "digest" not in m.payload["text"]]
    digests = [m for m in msgs if "digest" in m.payload["text"]]
    assert len(individual) == 2 and len(digests) == 1
    assert "3 more failed task(s)" in digests[0].payload["text"]
    named = {f"name=t{i}" for i in range(5)}
    seen = {n for n in named for m in msgs if n in block_text(m)}
    assert seen == named  # every failure is named somewhere, none twice as an individual alert


def test_many_failures_in_forked_processes_stay_within_the_rate_limit(slack, luigi_cfg, subprocess_env):
    luigi_cfg.set("slack", "rate_per_second", 2)
    luigi_cfg.set("slack", "burst", 2)
    subprocess_env["SLACK_WEBHOOK_URL"] = slack.url
    result = run_luigi(subprocess_env, "ManyFailures", "--count", "7", "--workers", "4")
    assert_failed_run(result)
    msgs = slack.wait_for(7)
    arrivals = [m.at for m in msgs]
    assert len(msgs) == 7
    # 2 at once, then 2/s: never more than rate + burst in any second, and at least 2.5 s for 7
    assert max_in_window(arrivals) <= 4
    assert max(arrivals) - min(arrivals) >= 2.0


# ---------------------------------------------------------------- a broken Slack never breaks the run


def test_dead_webhook_changes_nothing_and_is_not_retried(slack, luigi_cfg):
    slack.mode = "404"
    started = time.monotonic()
    assert build(ft.RaisesError(name="dead")) is False
    assert build(ft.ManyFailures(count=0)) is True  # the next run is unaffected
    assert time.monotonic() - started < 10
    assert len(slack.received) == 1 and slack.received[0].answered == 404
    kept = (Path(os.environ["TASKS_VAR_DIR"]) / "alerts" / "alerts.jsonl").read_text().splitlines()
    assert len(kept) == 1 and json.loads(kept[0])["delivery"] == "dead"


def test_slow_webhook_is_bounded_by_the_handler_budget(slack, luigi_cfg):
    slack.mode, slack.delay = "slow", 5
    luigi_cfg.set("slack", "timeout", 0.5)
    luigi_cfg.set("slack", "handler_budget", 2)
    started = time.monotonic()
    assert build(ft.RaisesError(name="slow")) is False
    assert time.monotonic() - started < 6
    assert 1 <= len(slack.received) <= 4


def test_importing_twice_does_not_double_alert(slack):
    import tasks.ops.alerts

    importlib.reload(tasks.ops.alerts)
    importlib.import_module("tasks")
    assert build(ft.RaisesError(name="once")) is False
    slack.wait_for(1)
    time.sleep(0.3)
    assert len(slack.received) == 1


def test_a_killed_single_worker_run_is_reported_by_the_run_summary(slack, subprocess_env):
    """--workers 1: the task runs in the luigi process, so SIGKILL takes the whole run and no
    handler can alert; the cron wrapper's send_run_summary() is what reports it."""
    from tasks.ops.alerts import send_run_summary

    subprocess_env["SLACK_WEBHOOK_URL"] = slack.url
    started = datetime.datetime.now(datetime.UTC)
    result = run_luigi(subprocess_env, "KillsItself", "--workers", "1")
    assert result.returncode == -9
    time.sleep(0.3)
    assert slack.received == []
    delivery = send_run_summary(["luigi", "--module", "tasks", "RunAll"], result.returncode, started_at=started)
    assert delivery is not None and delivery.outcome == "sent"
    (msg,) = slack.received
    assert "killed by SIGKILL" in msg.payload["text"] and "RunAll" in msg.body
