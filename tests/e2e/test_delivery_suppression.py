"""Bounces and complaints suppress, and the next send skips them: a real e-mail send to the fake SendGrid, the
fake posting signed Event Webhook batches (a hard bounce, a spam report, a soft bounce, an unsubscribe) to a real
`python -m tasks web` subprocess, whose background applier records the outcomes in the ledger and suppresses the
addresses; `python -m tasks suppress list` shows them with their reason; the next campaign's send skips them (and
only them; a soft bounce is sent again)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tasks.campaign import wiring
from tasks.campaign.tasks import LoadSegments
from tests.conftest import REPO
from tests.fakes.providers import FakeProvider
from tests.state_fixtures import free_port
from tests.tasks.campaign_helpers import DAY, ledger_rows, setup_campaign
from tests.tasks.web_helpers import start_web

pytestmark = pytest.mark.slow


def suppress_list(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "tasks", "suppress", "list"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_bounces_and_complaints_suppress_and_the_next_send_skips_them(luigi_cfg, tmp_path, var_path,
                                                                      subprocess_env, monkeypatch):
    rows = setup_campaign(luigi_cfg, tmp_path, 30)
    luigi_cfg.set("campaign", "frequency_cap", "off")  # two campaigns the same day to the same customers
    customers = LoadSegments(date=DAY).customers_path()
    bounced, complained, soft, unsubscribed = (rows[i]["email"] for i in range(4))
    with FakeProvider() as fake:
        env = {**subprocess_env, **FakeProvider.env(), **fake.webhook_env()}
        for name, value in {**FakeProvider.env(), **fake.webhook_env()}.items():
            monkeypatch.setenv(name, value)
        for key, value in {"provider": "sendgrid", "base_url": fake.base_url, "rate": 500, "burst": 100}.items():
            luigi_cfg.set("email_campaign", key, value)
        first = wiring.run_channel_send("email", DAY, "spring", "all", customers)
        assert first.counts["sent"] == 30

        port = free_port()
        web = start_web(env, tmp_path / "web.log", port)
        try:
            events = fake.sendgrid_events(bounce={bounced}, spam={complained}, blocked={soft})
            one = next(e for e in events if e["email"] == unsubscribed and e["event"] == "delivered")
            events.append({**one, "event": "unsubscribe", "sg_event_id": "unsubscribe-1"})
            answers = fake.post_sendgrid_events(f"http://127.0.0.1:{port}/events/sendgrid", events, batch_size=7)
            assert {status for status, _ in answers} == {200}
            deadline = time.monotonic() + 60
            while (listed := suppress_list(env)).count("sendgrid") < 3 and time.monotonic() < deadline:
                time.sleep(0.2)  # the endpoint's applier runs just after each stored batch
        finally:
            web.send_signal(signal.SIGKILL)
            web.wait()
        assert "hard bounce: Invalid Address" in listed and "spam complaint" in listed
        assert "unsubscribed at the provider" in listed and listed.count("sendgrid") == 3

        spring = ledger_rows(var_path, "email", campaign="spring")
        outcome = {r["customer_id"]: (r["delivery"], r["delivery_type"]) for r in spring.values()}
        assert outcome[rows[0]["customer_id"]] == ("bounced", "hard")
        assert outcome[rows[1]["customer_id"]] == ("complained", None)
        assert outcome[rows[2]["customer_id"]] == ("bounced", "soft")
        assert outcome[rows[5]["customer_id"]] == ("delivered", None)

        before = len(fake.accepted())
        second = wiring.run_channel_send("email", DAY, "summer", "all", customers)
        sent_to = {m["to"] for m in fake.accepted()[before:]}
    assert second.counts["suppressed"] == 3 and second.counts["sent"] == 27
    assert not {bounced, complained, unsubscribed} & sent_to and soft in sent_to
    summer = ledger_rows(var_path, "email", campaign="summer")
    skipped = {cid for cid, r in summer.items() if r["state"] == "suppressed"}
    assert skipped == {rows[i]["customer_id"] for i in (0, 1, 3)}
