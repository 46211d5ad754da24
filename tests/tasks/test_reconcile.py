"""Reconcile against the fake Twilio's Messages list: unknown SMS the provider has become `sent` with
its sid, those it never got go back to `pending` after the grace and the next run sends them once,
young ones stay unknown; lookups are paced by the channel's limit and validated against the spec."""

from __future__ import annotations

import collections
import json
import shutil
import time

import pytest
import requests

from tasks.__main__ import main
from tasks.campaign import reconcile, wiring
from tasks.campaign.tasks import ExportSendResults, LoadSegments, SendSmsCampaign
from tasks.channels import twilio
from tasks.channels.ledger import SendKey, SendLedger, ledger_path
from tasks.config import PROJECT_ROOT
from tests.fakes.providers import TWILIO_SID, FakeProvider, Faults
from tests.tasks.campaign_helpers import DAY, TASKS, build, ledger_rows, setup_campaign


@pytest.fixture
def fake_env(monkeypatch):
    for name, value in FakeProvider.env().items():
        monkeypatch.setenv(name, value)


def sms_ledger(var_path) -> dict[str, dict]:
    with SendLedger(ledger_path(var_path, "sms")) as ledger:
        return {r["customer_id"]: r for r in ledger.rows(SendKey("demo", DAY.isoformat(), "sms"))}


def point_at(luigi_cfg, fake: FakeProvider, **settings: object) -> None:
    base = {"provider": "twilio", "base_url": fake.base_url, "retry_delay": 0.2, "timeout": 2, "rate": 20,
            "burst": 3, "concurrency": 1, "progress_interval": 0.2}
    for key, value in {**base, **settings}.items():
        luigi_cfg.set("sms_campaign", key, value)


def test_reconcile_settles_found_reopens_missing_and_the_next_run_sends_each_once(
        warehouse, luigi_cfg, tmp_path, var_path, fake_env, monkeypatch, capsys):
    # request 3: accepted, then the connection drops (Twilio has it); request 6: closed unprocessed
    faults = Faults(script={3: "drop", 6: "hangup"})
    with FakeProvider(faults=faults, rate=20, burst=5) as fake:
        rows = setup_campaign(luigi_cfg, tmp_path, 10)
        point_at(luigi_cfg, fake, reconcile_grace_minutes=0)
        assert build(ExportSendResults(date=DAY, channel="sms"))
        unknown = {cid for cid, r in sms_ledger(var_path).items() if r["state"] == "unknown"}
        assert len(unknown) == 2
        by_phone = {r["phone"]: r["customer_id"] for r in rows}
        delivered = {by_phone[m["to"]]: m["sid"] for m in fake.accepted()}
        (dropped,) = unknown & set(delivered)
        (lost,) = unknown - set(delivered)
        # noise on the numbers: an older day's message and messages of an hour before the send (asked for:
        # the lookup starts a day before, but older than the recipient's ledger row), with pages of 2 so
        # that the lookup has to follow next_page_uri. (A message with another body sent since the row was
        # made keeps it unknown: test_a_message_with_another_body_is_never_taken_for_not_found.)
        phone = {r["customer_id"]: r["phone"] for r in rows}
        for cid in (dropped, lost):
            fake.add_twilio_message(phone[cid], "an older campaign", created=time.time() - 3 * 86400)
            for n in range(3):
                fake.add_twilio_message(phone[cid], f"an earlier campaign #{n}", created=time.time() - 3600)
        monkeypatch.setattr(twilio, "LIST_PAGE_SIZE", 2)

        assert main(["reconcile", "--date", DAY.isoformat()]) == 0
        out = capsys.readouterr().out
        assert "2 unknown -> 1 sent, 1 pending again, 0 still unknown" in out
        assert phone[dropped] not in out and phone[lost] not in out, "no address on the console"
        ledger = sms_ledger(var_path)
        assert ledger[dropped]["state"] == "sent" and ledger[dropped]["provider_message_id"] == delivered[dropped]
        assert ledger[lost]["state"] == "pending" and "not found at twilio" in ledger[lost]["reason"]
        assert fake.counters["twilio_list_requests"] == 2 + 2, "both pages of both lookups (2 per page)"
        assert fake.counters["spec_errors"] == 0, fake.spec_problems
        result_file = wiring.result_path(var_path, DAY, "demo", "sms", "all")
        assert not result_file.exists(), "a row is pending again: the send is not complete any more"

        monkeypatch.setattr(twilio, "LIST_PAGE_SIZE", 1000)
        assert build(ExportSendResults(date=DAY, channel="sms"))  # the next run sends the pending one
        per_number = collections.Counter(m["to"] for m in fake.accepted())
        assert set(per_number) == set(phone.values()) and max(per_number.values()) == 1
        result = json.loads(result_file.read_text())
        assert result["counts"]["sent"] == 10 and result["counts"]["unknown"] == 0
        counts = dict(warehouse.execute(
            "SELECT state, COUNT(*) FROM analytics.campaign_sends WHERE date = %(d)s AND channel = 'sms' GROUP BY 1",
            {"d": DAY.isoformat()}))
        assert counts == {"sent": 10}
        assert main(["reconcile", "--date", DAY.isoformat()]) == 0
        assert "nothing to reconcile" in capsys.readouterr().out


@pytest.mark.parametrize("backend", ["sqlite-2-shards", "postgres"])
def test_a_reopened_recipient_is_sent_by_the_next_run_of_a_sharded_or_shared_state_send(
        backend, request, warehouse, luigi_cfg, tmp_path, var_path, fake_env, capsys):
    # the shards' result files (and, with Postgres state, the marker rows) kept the send "done", so the next
    # run only recombined the old results and the reopened recipient was never sent
    if backend == "postgres":
        request.getfixturevalue("postgres_state")
    faults = Faults(script={3: "drop", 6: "hangup"})
    with FakeProvider(faults=faults, rate=20, burst=5) as fake:
        rows = setup_campaign(luigi_cfg, tmp_path, 10)
        point_at(luigi_cfg, fake, reconcile_grace_minutes=0, shards=2 if backend != "postgres" else 1)
        assert build(ExportSendResults(date=DAY, channel="sms"))
        assert main(["reconcile", "--date", DAY.isoformat()]) == 0
        out = capsys.readouterr().out
        assert "2 unknown -> 1 sent, 1 pending again" in out
        assert not SendSmsCampaign(date=DAY).complete(), "a recipient is pending again: the send is not done"
        if backend != "postgres":  # one send in the day's list, not one per shard file
            assert reconcile.sends_of_day(DAY, "demo") == [("email", "demo", "all"), ("push", "demo", "all"),
                                                           ("sms", "demo", "all")]

        assert build(ExportSendResults(date=DAY, channel="sms"))
        states = collections.Counter(r["state"] for r in ledger_rows(var_path, "sms").values())
        assert states == {"sent": 10}
        per_number = collections.Counter(m["to"] for m in fake.accepted())
        assert len(per_number) == len(rows) and max(per_number.values()) == 1
        result = json.loads(wiring.result_path(var_path, DAY, "demo", "sms", "all").read_text())
        assert {k: v for k, v in result["counts"].items() if v} == {"sent": 10}
        counts = dict(warehouse.execute(
            "SELECT state, COUNT(*) FROM analytics.campaign_sends WHERE channel = 'sms' GROUP BY 1"))
        assert counts == {"sent": 10}


def test_a_message_with_another_body_is_never_taken_for_not_found(
        warehouse, luigi_cfg, tmp_path, var_path, fake_env, capsys):
    # the send used --template promo; `python -m tasks reconcile` renders the section's template, found no
    # message with that body, reopened the row and the next run sent the customer a second SMS
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "config" / "templates", templates)
    (templates / "sms" / "promo.toml").write_text('body = "Promo for ${customer_id}. Reply STOP to opt out."\n')
    luigi_cfg.set("campaign", "templates_dir", str(templates))
    with FakeProvider(faults=Faults(script={3: "drop"}), rate=20, burst=5) as fake:
        setup_campaign(luigi_cfg, tmp_path, 5)
        point_at(luigi_cfg, fake, reconcile_grace_minutes=0)
        assert build(SendSmsCampaign(date=DAY, template="promo"))
        assert main(["reconcile", "--date", DAY.isoformat()]) == 0
        out = capsys.readouterr().out
        assert "1 unknown -> 0 sent, 0 pending again, 1 still unknown" in out
        assert "1 of them got a message from us with another body" in out
        assert build(SendSmsCampaign(date=DAY, template="promo"))
        assert max(collections.Counter(m["to"] for m in fake.accepted()).values()) == 1


def test_a_settled_unknown_updates_the_result_file_and_the_warehouse(
        warehouse, luigi_cfg, tmp_path, var_path, fake_env):
    with FakeProvider(faults=Faults(script={2: "drop"})) as fake:
        setup_campaign(luigi_cfg, tmp_path, 4)
        point_at(luigi_cfg, fake)
        assert build(ExportSendResults(date=DAY, channel="sms"))
        path = wiring.result_path(var_path, DAY, "demo", "sms", "all")
        assert json.loads(path.read_text())["counts"]["unknown"] == 1
        assert main(["reconcile", "--date", DAY.isoformat(), "--campaign", "demo"]) == 0
        result = json.loads(path.read_text())
        assert (result["counts"]["sent"], result["counts"]["unknown"]) == (4, 0)
        assert result["reconciled"][0]["settled_sent"] == 1
        counts = dict(warehouse.execute(
            "SELECT state, COUNT(*) FROM analytics.campaign_sends WHERE channel = 'sms' GROUP BY 1"))
        assert counts == {"sent": 4}
        assert ExportSendResults(date=DAY, channel="sms").complete(), "the reload marked the new result exported"


def test_a_queued_message_stays_unknown_within_the_grace_and_lookups_are_paced(
        luigi_cfg, tmp_path, var_path, fake_env):
    # every message stays queued (no date_sent), and every other request drops after accepting:
    # the lookups find nothing, and within the grace nothing goes back to pending
    faults = Faults(script=dict.fromkeys(range(1, 13, 2), "drop"))
    with FakeProvider(faults=faults, rate=5, burst=5, twilio_queued=True) as fake:
        setup_campaign(luigi_cfg, tmp_path, 12)
        point_at(luigi_cfg, fake, rate=5, burst=2, reconcile_grace_minutes=30)
        assert build(TASKS["sms"](date=DAY))
        unknown = {cid for cid, r in sms_ledger(var_path).items() if r["state"] == "unknown"}
        assert len(unknown) == 6
        time.sleep(5 / 5 + 0.2)  # the fake's bucket refills after the send: count the lookups' own 429s only
        before = fake.counters["throttled"]
        result = reconcile.reconcile_send("sms", DAY, "demo", "all", LoadSegments(date=DAY).customers_path())
        assert (result.unknown_before, result.settled_sent, result.reopened, result.still_unknown) == (6, 0, 0, 6)
        assert fake.counters["throttled"] == before, "the lookups kept to the channel's limit"
        assert fake.max_requests_in_window(1.0, "twilio") <= 5 + 2 + 2
        assert {cid for cid, r in sms_ledger(var_path).items() if r["state"] == "unknown"} == unknown

        # after the grace, the same lookups put them back to pending
        later = time.time() + 31 * 60
        result = reconcile.reconcile_send("sms", DAY, "demo", "all", LoadSegments(date=DAY).customers_path(),
                                          now=later)
        assert result.reopened == 6


def test_email_and_push_unknowns_stay_unknown_with_the_reason(luigi_cfg, tmp_path, var_path, fake_env):
    with FakeProvider(faults=Faults(script={1: "drop"}, providers=("fcm",))) as fake:
        setup_campaign(luigi_cfg, tmp_path, 3)
        for key, value in {"provider": "fcm", "base_url": fake.base_url, "rate": 50, "burst": 5,
                           "concurrency": 1}.items():
            luigi_cfg.set("push_campaign", key, value)
        assert build(TASKS["push"](date=DAY))
        result = reconcile.reconcile_send("push", DAY, "demo", "all", LoadSegments(date=DAY).customers_path())
        assert (result.unknown_before, result.still_unknown) == (1, 1)
        assert "FCM has no message lookup" in result.note


def test_the_fake_list_endpoint_checks_credentials_and_the_spec():
    with FakeProvider() as fake:
        url = f"{fake.base_url}/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
        auth = (TWILIO_SID, FakeProvider.env()["TWILIO_AUTH_TOKEN"])
        assert requests.get(url, params={"PageSize": 5}, timeout=5).status_code == 401
        assert requests.get(url, params={"PageSize": 5000}, auth=auth, timeout=5).status_code == 400
        assert requests.get(url, params={"DateSent>": "yesterday"}, auth=auth, timeout=5).status_code == 400
        fake.add_twilio_message("+12125550100", "hello", created=time.time() - 86400 * 2)
        fake.add_twilio_message("+12125550100", "today")
        today = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime())
        page = requests.get(url, params={"To": "+12125550100", "DateSent>": today}, auth=auth, timeout=5).json()
        assert [m["body"] for m in page["messages"]] == ["today"] and page["next_page_uri"] is None
