"""deliver(): the Slack webhook client against a real HTTP server on 127.0.0.1 playing Slack."""

from __future__ import annotations

import json
import logging
import multiprocessing
import socket
import time

import pytest

from tasks.ops.slack import SlackSettings, deliver
from tests.fakes import slack as fake_slack
from tests.fakes.slack import FakeSlack

PAYLOAD = {"text": "Luigi failure: X", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]}


def settings(url: str, **overrides) -> SlackSettings:
    values = {"webhook_url": url, "rate_per_second": 1.0, "burst": 5, "timeout": 2.0, "max_retries": 3,
              "backoff": 0.05, "handler_budget": 10.0}
    values.update(overrides)
    return SlackSettings(**values)


def kept(var_path) -> list[dict]:
    path = var_path / "alerts" / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_ok_is_sent_once():
    with FakeSlack() as slack:
        result = deliver(PAYLOAD, settings(slack.url))
    assert result.outcome == "sent" and result.attempts == 1
    assert [r.payload for r in slack.received] == [PAYLOAD]


def test_429_waits_for_retry_after_then_sends():
    with FakeSlack(script=["429"], retry_after=1) as slack:
        result = deliver(PAYLOAD, settings(slack.url))
    first, second = slack.received
    assert result.outcome == "sent" and first.answered == 429 and second.answered == 200
    assert second.at - first.at >= 0.9


def test_429_longer_than_the_budget_gives_up_quickly(var_path):
    with FakeSlack(mode="429", retry_after=30) as slack:
        started = time.monotonic()
        result = deliver(PAYLOAD, settings(slack.url, handler_budget=1.0))
    assert time.monotonic() - started < 3
    assert result.outcome == "gave_up" and len(slack.received) == 1
    assert kept(var_path)[0]["delivery"] == "gave_up"


def test_5xx_is_retried_a_bounded_number_of_times(var_path):
    with FakeSlack(mode="500") as slack:
        result = deliver(PAYLOAD, settings(slack.url, max_retries=2))
    assert result.outcome == "gave_up" and result.status == 500
    assert len(slack.received) == 3
    gaps = [b.at - a.at for a, b in zip(slack.received, slack.received[1:], strict=False)]
    assert gaps[1] > gaps[0] * 1.2  # backoff grows
    assert kept(var_path)[0]["message"] == PAYLOAD


@pytest.mark.parametrize("mode, reason", [("400", "invalid_payload"), ("403", "action_prohibited"),
                                          ("404", "no_service"), ("410", "channel_is_archived")])
def test_dead_webhook_is_never_retried(mode, reason, var_path, caplog):
    with FakeSlack(mode=mode) as slack, caplog.at_level(logging.WARNING, logger="tasks.ops.slack"):
        result = deliver(PAYLOAD, settings(slack.url))
    assert result.outcome == "dead" and result.status == int(mode)
    assert result.detail.startswith(f"slack: HTTP {mode} {reason}: ")
    assert len(slack.received) == 1
    assert kept(var_path)[0]["status"] == int(mode) and kept(var_path)[0]["detail"] == result.detail
    # the WARNING names the hook by its hash, never by its URL (the URL is the secret)
    assert settings(slack.url).hook_id in caplog.text and "fakehooksecret" not in caplog.text


def test_slack_text_that_is_not_a_code_is_never_copied(var_path, monkeypatch):
    """Slack answers with a bare code; any other body (a proxy's page, an echo) stays out of logs."""
    monkeypatch.setitem(fake_slack._ERRORS, "500", (500, "oops <html> a@b.c"))
    with FakeSlack(mode="500") as slack:
        result = deliver(PAYLOAD, settings(slack.url, max_retries=0))
    assert result.outcome == "gave_up" and result.status == 500 and len(slack.received) == 1
    assert result.detail == "slack: HTTP 500" and "a@b.c" not in json.dumps(kept(var_path))


def test_slower_than_the_timeout_is_retried_then_given_up_in_bounded_time():
    with FakeSlack(mode="slow", delay=3) as slack:
        started = time.monotonic()
        result = deliver(PAYLOAD, settings(slack.url, timeout=0.3, max_retries=1))
        elapsed = time.monotonic() - started
    assert result.outcome == "gave_up" and result.detail == "slack: read timeout"
    assert len(slack.received) == 2 and elapsed < 2.5


def test_connection_refused_is_retried_then_given_up():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = deliver(PAYLOAD, settings(f"http://127.0.0.1:{port}/hook", max_retries=2))
    assert result.outcome == "gave_up" and result.attempts == 3 and result.detail == "slack: cannot connect"


def test_without_a_webhook_alerts_go_to_the_file_with_a_warning(var_path, caplog, monkeypatch):
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    with caplog.at_level(logging.WARNING, logger="tasks.ops.slack"):
        result = deliver(PAYLOAD)
    assert result.outcome == "file"
    assert kept(var_path)[0]["message"] == PAYLOAD
    assert str(var_path / "alerts" / "alerts.jsonl") in caplog.text


def _send_many(url: str, count: int) -> None:
    for _ in range(count):
        assert deliver(PAYLOAD, settings(url, rate_per_second=4.0, burst=2)).outcome == "sent"


def test_rate_limit_is_shared_by_processes():
    with FakeSlack() as slack:
        procs = [multiprocessing.Process(target=_send_many, args=(slack.url, 4)) for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        assert [p.exitcode for p in procs] == [0, 0, 0]
    arrivals = sorted(r.at for r in slack.received)
    assert len(arrivals) == 12
    # burst 2 then 4/s: at most rate + burst in any second; 12 need at least (12 - 2) / 4 = 2.5 s
    assert max(sum(1 for u in arrivals if t <= u < t + 1) for t in arrivals) <= 6
    assert arrivals[-1] - arrivals[0] >= 2.0
