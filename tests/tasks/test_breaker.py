"""The breaker on real parts: a real e-mail send (SendEmailCampaign through luigi.build) to the fake SendGrid,
which posts signed delivery events for every request it accepts to the real web endpoint (waitress on loopback,
events in a real SQLite store), 10% of them hard bounces. The send holds after about breaker_min_outcomes
outcomes with most recipients still pending, alerts once (a later run, still held, does not alert again),
claims nothing until `python -m tasks release-send`, and then finishes with the breaker off; status shows who
released it.
"""

from __future__ import annotations

import base64
import getpass
import json
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from tasks import __main__ as cli
from tasks import status
from tasks.campaign import web, wiring
from tasks.campaign.tasks import SendEmailCampaign
from tasks.channels.suppressions import SuppressionStore, suppressions_path
from tasks.ops import alerts
from tasks.ops import summary as summaries
from tasks.state.events import EventStore, events_path
from tests.fakes.providers import FakeProvider, sign_sendgrid
from tests.tasks.campaign_helpers import DAY, build, ledger_rows, setup_campaign
from tests.tasks.web_helpers import serving

RECIPIENTS = 1000
MIN_OUTCOMES = 50
SEND_KEY = f"demo/{DAY}/email"


def events_for(messages: list[dict[str, Any]], bounce: set[str]) -> list[dict[str, Any]]:
    """What SendGrid posts for these accepted messages: processed, then delivered or a hard bounce."""
    events = []
    for m in messages:
        base = {"email": m["to"], "timestamp": int(time.time()), "sg_message_id": f"{m['message_id']}.filter0001",
                "send_id": m["send_id"], "customer_id": m["customer_id"]}
        outcome = ({"event": "bounce", "type": "bounce", "bounce_classification": "Invalid Address",
                    "reason": "550 5.1.1 The email account that you tried to reach does not exist"}
                   if m["to"] in bounce else {"event": "delivered", "response": "250 OK"})
        events += [{**base, **event, "sg_event_id": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()}
                   for event in ({"event": "processed"}, outcome)]
    return events


def test_a_send_with_ten_percent_hard_bounces_holds_early_alerts_once_and_finishes_once_released(
        luigi_cfg, tmp_path: Path, var_path: Path, slack, monkeypatch, capsys):
    with FakeProvider() as fake, EventStore(events_path(var_path)) as store, \
            SuppressionStore(suppressions_path(var_path)) as suppressions:
        for name, value in FakeProvider.env().items():
            monkeypatch.setenv(name, value)
        app = web.build_app(store, suppressions, var_path, web.WebSettings(), fake.webhook_env())
        with serving(app) as base:
            rows = setup_campaign(luigi_cfg, tmp_path, RECIPIENTS, email={
                "provider": "sendgrid", "base_url": fake.base_url, "rate": 1000, "burst": 100, "batch_size": 10,
                "concurrency": 2, "breaker_min_outcomes": MIN_OUTCOMES, "retry_count": 1})
            bounce = {r["email"] for i, r in enumerate(rows) if i % 10 == 3}  # 10% dead mailboxes

            def speak_back(messages: list[dict[str, Any]]) -> None:  # as SendGrid accepts, before its 202
                body = json.dumps(events_for(messages, bounce)).encode()
                answer = requests.post(f"{base}/events/sendgrid", data=body, headers=sign_sendgrid(fake.event_key,
                                                                                                    body), timeout=10)
                assert answer.status_code == 200

            fake.on_accept = speak_back
            task = SendEmailCampaign(date=DAY)
            assert not build(task)  # held: the task fails with SendHeldError, no result file
            sent_first = fake.counters["accepted_messages"]
            states = [r["state"] for r in ledger_rows(var_path, "email").values()]
            assert MIN_OUTCOMES <= sent_first <= 2 * MIN_OUTCOMES, sent_first  # about min_outcomes, not the end
            assert states.count("pending") == RECIPIENTS - sent_first >= 0.9 * RECIPIENTS
            assert not task.output().exists()
            hold = wiring.open_holds().get(SEND_KEY)
            assert hold is not None and not hold.released
            assert hold.reason.startswith("hard bounce rate") and hold.figures["outcomes"] >= MIN_OUTCOMES
            (alert,) = slack.wait_for(1)
            assert "breaker" in json.dumps(alert.payload) and "release-send" in json.dumps(alert.payload)

            # the next run (a new run of the scheduler): still held, claims nothing, no second alert
            monkeypatch.setattr(alerts, "RUN_ID", "the-next-run")
            assert not build(SendEmailCampaign(date=DAY))
            assert fake.counters["accepted_messages"] == sent_first
            assert len(slack.received) == 1

            assert cli.main(["release-send", "--date", DAY.isoformat(), "--campaign", "demo", "--channel",
                             "email"]) == 0
            assert f"by {getpass.getuser()}" in capsys.readouterr().out
            assert build(SendEmailCampaign(date=DAY))  # the breaker is off for this send: it finishes
            assert fake.counters["accepted_messages"] == RECIPIENTS
            assert {r["state"] for r in ledger_rows(var_path, "email").values()} == {"sent"}
            assert task.output().exists() and len(slack.received) == 1
    released = wiring.open_holds().get(SEND_KEY)
    assert released is not None and released.released_by == getpass.getuser()
    text = summaries.render(status.collect(DAY, warehouse=False))
    assert "held by its breaker" in text and f"released by {getpass.getuser()}" in text


def test_release_send_of_a_send_that_is_not_held_changes_nothing(capsys):
    assert cli.main(["release-send", "--date", DAY.isoformat(), "--campaign", "demo", "--channel", "sms"]) == 1
    assert "not held" in capsys.readouterr().out
    assert wiring.open_holds().all() == []
