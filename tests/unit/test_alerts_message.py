"""Alert messages: Block Kit shape, truncation, the luigid link, and the cron run summary."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tasks.ops import alerts
from tasks.ops.alert_ledger import AlertLedger
from tests.fakes.slack import FakeSlack, _well_formed


def message(**overrides) -> dict:
    values = {"task_id": "MauSummary_2024_01_05_abc", "family": "MauSummary", "params": "date=2024-01-05",
              "kind": "failure", "error_type": "DataValidationError",
              "message": "MAU failed 1 check(s): non_empty: 0 rows"}
    values.update(overrides)
    return alerts.failure_message(**values)


def test_failure_message_is_block_kit_with_a_text_fallback(luigi_cfg):
    luigi_cfg.set("alerts", "owner", "@mau-owner")
    payload = message()
    assert _well_formed(payload)
    assert "MauSummary" in payload["text"] and "DataValidationError" in payload["text"]
    blob = json.dumps(payload["blocks"])
    assert "date=2024-01-05" in blob and "non_empty: 0 rows" in blob and "@mau-owner" in blob
    assert "visualiser" not in blob  # no central scheduler configured


def test_the_run_date_is_the_tasks_date_and_the_failure_time_is_apart(luigi_cfg):
    fields = json.dumps(message(run_date="2024-01-05")["blocks"][1])
    assert "*Run date*\\n2024-01-05" in fields
    failed_at = fields.split("*Failed at*\\n", 1)[1][:10]
    assert failed_at == datetime.now(UTC).date().isoformat()
    assert "*Run date*\\n-" in json.dumps(message()["blocks"][1]), "a task without a date says so"


def test_long_errors_are_cut_to_the_configured_length(luigi_cfg):
    luigi_cfg.set("slack", "max_error_chars", 200)
    payload = message(message="row failed check; " * 600)
    assert _well_formed(payload)
    error_block = payload["blocks"][3]["text"]["text"]
    assert error_block.startswith("*DataValidationError*\n```row failed check;")
    assert error_block.endswith("…```") and len(error_block) == len("*DataValidationError*\n``````") + 200
    assert len(json.dumps(payload)) < 2_000


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({("core", "default-scheduler-host"): "luigid.internal"}, "http://luigid.internal:8082/static/visualiser/"),
        ({("core", "default-scheduler-url"): "https://luigi.example.com/"}, "https://luigi.example.com/static/"),
        ({("alerts", "luigid_url"): "http://ops:9000"}, "http://ops:9000/static/visualiser/index.html#tab=graph"),
        ({("core", "default-scheduler-host"): "luigid.internal", ("core", "local_scheduler"): "true"}, None),
        ({}, None),
    ],
)
def test_luigid_link_only_with_a_central_scheduler(luigi_cfg, settings, expected):
    for (section, key), value in settings.items():
        luigi_cfg.set(section, key, value)
    url = alerts.luigid_task_url("MauSummary_2024_01_05_abc")
    if expected is None:
        assert url is None
    else:
        assert url.startswith(expected) and url.endswith("taskId=MauSummary_2024_01_05_abc")
        assert "open in luigid" in json.dumps(message())


def test_run_summary_names_the_signal_and_unreported_failures(luigi_cfg, var_path, monkeypatch):
    started = datetime.now(UTC) - timedelta(minutes=5)
    ledger = AlertLedger(var_path / "alerts" / "ledger.sqlite")
    # a run killed before its digest: one alerted task that failed again, one never alerted
    ledger.record("killed-run", "A_1", "A(date=2024-01-05) failure: ValueError: x", cap=1, alert_on_retry=False)
    ledger.record("killed-run", "A_1", "A(date=2024-01-05) failure: ValueError: x", cap=1, alert_on_retry=False)
    ledger.record("killed-run", "B_1", "B(date=2024-01-05) failure: KeyError: y", cap=1, alert_on_retry=False)
    with FakeSlack() as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
        result = alerts.send_run_summary(
            ["luigi", "--module", "tasks", "RunAll", "--date", "2024-01-05"], -9, started_at=started,
            log_tail="INFO: running MauSummary\nmail bob@example.com",
        )
    assert result.outcome == "sent"
    (msg,) = slack.received
    blob = msg.body
    assert "SIGKILL" in msg.payload["text"] and "RunAll --date 2024-01-05" in blob
    assert "failed 2 times" in blob and "B(date=2024-01-05)" in blob
    assert "bob@example.com" not in blob and "b***@example.com" in blob


def test_the_log_tail_is_redacted_before_it_is_cut(luigi_cfg, var_path, monkeypatch):
    # the tail was cut to its last 1,500 characters first: a secret cut in half matched no pattern any more
    token = "eyJhbGciOiJIUzI1NiJ9." + "p" * 40
    tail = "x" * 3000 + "\nAuthorization: Bearer " + token + "\n" + "y" * 1460
    with FakeSlack() as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
        alerts.send_run_summary(["luigi"], 1, log_tail=tail)
    (msg,) = slack.received
    assert "pppppppppp" not in msg.body and "hJIUzI1NiJ9" not in msg.body


def test_run_summary_names_luigi_retcodes(luigi_cfg, monkeypatch):
    luigi_cfg.set("retcode", "task_failed", 30)
    with FakeSlack() as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
        alerts.send_run_summary("luigi --module tasks RunAll", 30)
    assert "exit 30 (task_failed)" in slack.received[0].payload["text"]
