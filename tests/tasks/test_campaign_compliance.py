"""Campaign compliance on real parts: the fake providers on loopback, the ledger, the suppression store,
the unsubscribe server over real HTTP, a controllable clock for quiet hours.

Each skipped recipient ends in its own final state (suppressed, capped, duplicate_address), is counted
in the result, and is never a failure.
"""

from __future__ import annotations

import collections
import csv
import datetime
import json
import random
from pathlib import Path

import pytest
import requests

from tasks.__main__ import main
from tasks.campaign import compliance, outcome, send_config, web, wiring
from tasks.campaign import preview as preview_core
from tasks.campaign.tasks import LoadSegments
from tasks.channels.ledger import SendKey, ledger_path
from tasks.channels.suppressions import Suppression, SuppressionStore, suppressions_path
from tasks.channels.unsubscribe import read_token
from tasks.errors import RecipientsHeldError
from tasks.state.events import EventStore, events_path
from tests.fakes.clock import FakeClock
from tests.fakes.providers import FakeProvider
from tests.tasks.campaign_helpers import DAY, TASKS, build, customer, ledger_rows, result
from tests.tasks.web_helpers import serving

PROVIDER = {"email": "sendgrid", "sms": "twilio", "push": "fcm"}
SECRET = "unsubscribe-test-secret-0123456789"
UTC = datetime.UTC


@pytest.fixture
def fake_env(monkeypatch):
    for name, value in FakeProvider.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UNSUBSCRIBE_SECRET", SECRET)


def customers(count: int, **overrides: dict[str, str]) -> list[dict[str, str]]:
    rng = random.Random(3)
    rows = [customer(i, rng) for i in range(count)]
    for index, fields in overrides.items():
        rows[int(index.lstrip("r"))].update(fields)
    return rows


def load(luigi_cfg, tmp_path: Path, rows: list[dict[str, str]], **settings: dict[str, object]) -> None:
    """Write the rows as the segment CSV (every key a column), build LoadSegments, apply section settings."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    with open(tmp_path / "customers.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
    luigi_cfg.set("segments", "input_path", tmp_path / "customers.csv")
    luigi_cfg.set("campaign", "suppression_list", "")
    for section, values in settings.items():
        for key, value in values.items():
            luigi_cfg.set(section, key, value)
    assert build(LoadSegments(date=DAY))


def point_at(luigi_cfg, fake: FakeProvider, channel: str, **settings: object) -> None:
    base = {"provider": PROVIDER[channel], "base_url": fake.base_url, "rate": 200, "burst": 50, "retry_delay": 0.2,
            "timeout": 2, "progress_interval": 0.2}
    for key, value in {**base, **settings}.items():
        luigi_cfg.set(f"{channel}_campaign", key, value)


def send(channel: str, campaign: str = "demo", date: datetime.date = DAY, **kwargs):
    path = LoadSegments(date=DAY).customers_path()
    return wiring.run_channel_send(channel, date, campaign, "all", path, **kwargs)


def test_opt_outs_are_suppressed_remembered_and_skipped_by_every_later_campaign(
        luigi_cfg, tmp_path, var_path, fake_env, capsys):
    rows = customers(8)
    listed = tmp_path / "suppressions.csv"
    national = rows[3]["phone"][2:]
    listed.write_text(f"channel,address\nsms,({national[:3]}) {national[3:6]}-{national[6:]}\n"
                      f"all,{rows[4]['phone']}\nemail,{rows[6]['email'].upper()}\n")
    with FakeProvider(opted_out={rows[1]["phone"], rows[2]["device_token"]}) as fake:
        load(luigi_cfg, tmp_path, rows, campaign={"suppression_list": listed, "frequency_cap": "off"})
        point_at(luigi_cfg, fake, "sms")
        point_at(luigi_cfg, fake, "push")
        assert main(["suppress", "add", "sms", rows[5]["phone"], "--reason", "asked by phone"]) == 0

        result = send("sms")
        assert (result.counts["sent"], result.counts["suppressed"], result.counts["failed"]) == (4, 4, 0)
        outcome.check_failure_ratio(result.as_dict(), 0.0)  # suppressions are never failures
        assert fake.counters["twilio_requests"] == 5, "only the STOP number was asked; the listed ones never"
        ledger = ledger_rows(var_path, "sms")
        assert "21610" in ledger[rows[1]["customer_id"]]["reason"]
        assert ledger[rows[3]["customer_id"]]["reason"] == "on [campaign] suppression_list"
        assert ledger[rows[5]["customer_id"]]["reason"] == "address suppressed on sms (cli)"
        assert {m["to"] for m in fake.accepted()} == {rows[i]["phone"] for i in (0, 6, 7)} | {rows[2]["phone"]}

        pushed = send("push")
        assert (pushed.counts["sent"], pushed.counts["suppressed"]) == (7, 1)
        with SuppressionStore(suppressions_path(var_path)) as store:
            assert store.find("sms", rows[1]["phone"]).source == "twilio"
            assert store.find("push", rows[2]["device_token"]).source == "fcm"

        # a later campaign skips both opt-outs without asking the provider again
        before = dict(fake.counters)
        assert send("sms", campaign="spring").counts["suppressed"] == 4
        assert send("push", campaign="spring").counts["suppressed"] == 1
        assert fake.counters["twilio_requests"] - before["twilio_requests"] == 4
        assert fake.counters["fcm_requests"] - before["fcm_requests"] == 7
        assert fake.counters["opted_out"] == before["opted_out"] == 2

    capsys.readouterr()
    assert main(["suppress", "list"]) == 0
    listing = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert {(r["channel"], r["source"]) for r in listing} == {("sms", "cli"), ("sms", "twilio"), ("push", "fcm")}
    assert main(["suppress", "remove", "sms", rows[5]["phone"]]) == 0
    assert main(["suppress", "add", "sms", "not a phone"]) == 2
    imported = tmp_path / "import.csv"
    imported.write_text(f"channel,address\nemail,{rows[0]['email']}\nsms,{rows[1]['phone']}\n")
    assert main(["suppress", "import", str(imported)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 added, 1 already suppressed"


def test_a_suppression_added_mid_send_is_honoured(luigi_cfg, tmp_path, var_path, fake_env):
    rows = customers(6)
    last = rows[5]["phone"]

    def stop_the_last_after_the_second(messages: list[dict]) -> None:
        if fake.counters["accepted_messages"] == 2:
            with SuppressionStore(suppressions_path(var_path)) as store:
                store.add([Suppression("sms", "address", last, "cli", "texted us STOP")])

    with FakeProvider(on_accept=stop_the_last_after_the_second) as fake:
        load(luigi_cfg, tmp_path, rows)
        point_at(luigi_cfg, fake, "sms", concurrency=1)
        result = send("sms")
        assert (result.counts["sent"], result.counts["suppressed"]) == (5, 1)
        assert last not in {m["to"] for m in fake.accepted()}
        assert ledger_rows(var_path, "sms")[rows[5]["customer_id"]]["state"] == "suppressed"


def test_email_personalised_one_address_once_one_click_headers_asm_and_sandbox(
        luigi_cfg, tmp_path, var_path, fake_env):
    rows = customers(6, r0={"first_name": "Ann", "plan": "gold"}, r1={"first_name": "", "plan": "basic"},
                     r3={"plan": ""}, r4={"first_name": "<b>Bo</b>", "plan": "gold"})
    rows[2]["email"] = f"  {rows[1]['email'].upper()} "  # another customer id, the same mailbox
    for row in rows:
        row.setdefault("plan", "basic")
    template = tmp_path / "spring.toml"
    template.write_text('subject = "Hi ${first_name}"\nbody = "Your $plan plan. Stop: $unsubscribe_url"\n'
                        'html = "<p>Hi ${first_name}, your $plan plan</p>"\n[defaults]\nfirst_name = "there"\n')
    with FakeProvider() as fake:
        load(luigi_cfg, tmp_path, rows, campaign={"frequency_cap": "off"})
        point_at(luigi_cfg, fake, "email", template=template, unsubscribe_url="https://example.com/u/{token}",
                 asm_group_id=42, batch_size=10, max_failure_ratio=0.5)
        result = send("email")
        counts = result.counts
        assert (counts["sent"], counts["duplicate_address"], counts["failed"]) == (4, 1, 1)
        ledger = ledger_rows(var_path, "email")
        assert ledger[rows[2]["customer_id"]]["reason"] == f"customer {rows[1]['customer_id']} has the same address " \
                                                         f"in this send"
        assert ledger[rows[3]["customer_id"]]["reason"].startswith("missing_field: plan")
        assert fake.counters["spec_errors"] == 0, fake.spec_problems
        by_id = {m["customer_id"]: m for m in fake.accepted()}
        assert set(by_id) == {rows[i]["customer_id"] for i in (0, 1, 4, 5)}
        ann = by_id[rows[0]["customer_id"]]
        assert ann["subject"] == "Hi Ann" and ann["html"] == "<p>Hi Ann, your gold plan</p>"
        assert by_id[rows[1]["customer_id"]]["subject"] == "Hi there"
        assert by_id[rows[4]["customer_id"]]["html"] == "<p>Hi &lt;b&gt;Bo&lt;/b&gt;, your gold plan</p>"
        assert ann["content_types"] == ["text/plain", "text/html"] and ann["asm"] == {"group_id": 42}
        url = ann["headers"]["List-Unsubscribe"][1:-1]
        assert ann["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" and url in ann["body"]
        assert read_token(SECRET.encode(), url.rpartition("/")[2]) == (
            SendKey("demo", DAY.isoformat(), "email"), rows[0]["customer_id"])

        luigi_cfg.set("email_campaign", "sandbox", "true")
        sandboxed = send("email", campaign="sandbox-check", date=DAY + datetime.timedelta(days=30))
        assert sandboxed.counts["sent"] == 4 and fake.counters["sandbox"] >= 1
        assert len(fake.accepted()) == 4, "sandbox mode delivers nothing"


def test_the_fake_rejects_a_one_click_header_without_an_https_link(fake_env):
    body = {"personalizations": [{"to": [{"email": "a@example.com"}], "subject": "s",
                                  "headers": {"List-Unsubscribe": "<http://example.com/u/x>",
                                              "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}}],
            "from": {"email": "f@example.com"}, "content": [{"type": "text/plain", "value": "b"}]}
    with FakeProvider() as fake:
        answer = requests.post(f"{fake.base_url}/v3/mail/send", json=body, timeout=5,
                               headers={"Authorization": f"Bearer {FakeProvider.env()['SENDGRID_API_KEY']}"})
        assert answer.status_code == 400 and "RFC 8058" in answer.text
        body["personalizations"][0]["headers"] = {"Subject": "x"}
        answer = requests.post(f"{fake.base_url}/v3/mail/send", json=body, timeout=5,
                               headers={"Authorization": f"Bearer {FakeProvider.env()['SENDGRID_API_KEY']}"})
        assert answer.status_code == 400 and "may not be overridden" in answer.text


def test_frequency_cap_counts_messages_across_campaigns_and_dates(luigi_cfg, tmp_path, var_path):
    load(luigi_cfg, tmp_path, customers(5), email_campaign={"rate": 500, "burst": 100})
    assert send("email", campaign="a").counts["sent"] == 5
    second = send("email", campaign="b")  # default 1/7d: the same day's second campaign is capped
    assert (second.counts["capped"], second.counts["sent"]) == (5, 0)
    outcome.check_failure_ratio(second.as_dict(), 0.0)
    assert "within frequency_cap 1/7d" in next(iter(ledger_rows(var_path, "email", "b").values()))["reason"]
    assert send("email", campaign="a", date=DAY + datetime.timedelta(days=1)).counts["capped"] == 5  # the daily re-run
    assert send("sms", campaign="a").counts["sent"] == 5  # per channel
    luigi_cfg.set("campaign", "frequency_cap", "2/7d")
    assert send("email", campaign="c").counts["sent"] == 5
    assert send("email", campaign="d").counts["capped"] == 5
    luigi_cfg.set("campaign", "frequency_cap", "off")
    assert send("email", campaign="e").counts["sent"] == 5


def quiet_rows() -> list[dict[str, str]]:
    rows = customers(4)
    rows[0].update(phone="+14155550100", timezone="")  # Los Angeles
    rows[1].update(phone="+12125550100", timezone="")  # New York
    rows[2].update(phone="+12125550101", timezone="Europe/London")  # the column wins over the number
    rows[3].update(phone="+18005550199", timezone="")  # toll-free: 42 zones
    return rows


def test_quiet_hours_hold_each_recipient_until_its_local_window_with_a_controllable_clock(
        luigi_cfg, tmp_path, var_path, fake_env):
    rows = quiet_rows()
    clock = FakeClock(datetime.datetime(2026, 3, 2, 3, 0, tzinfo=UTC))  # 22:00 New York, 19:00 Los Angeles
    sent_at: dict[str, datetime.datetime] = {}
    seen: list[str] = []
    with FakeProvider(on_accept=lambda msgs: sent_at.update({m["to"]: clock.utc() for m in msgs})) as fake:
        load(luigi_cfg, tmp_path, rows, campaign={"frequency_cap": "off"})
        point_at(luigi_cfg, fake, "sms", quiet_hours="auto", progress_interval=600,
                 default_timezone="", max_hold_hours=24)
        result = send("sms", clock=clock, progress=lambda p: seen.append(str(p)))
        assert sent_at == {
            "+14155550100": datetime.datetime(2026, 3, 2, 3, 0, tzinfo=UTC),   # 19:00 local: at once
            "+12125550101": datetime.datetime(2026, 3, 2, 8, 0, tzinfo=UTC),   # 08:00 in London
            "+12125550100": datetime.datetime(2026, 3, 2, 13, 0, tzinfo=UTC),  # 08:00 in New York
            "+18005550199": datetime.datetime(2026, 3, 2, 22, 0, tzinfo=UTC),  # 08:00 in Guam, 18:00 in Halifax
        }
        assert result.counts["sent"] == 4 and result.complete
        assert any("3 held for quiet hours until 2026-03-02 08:00 UTC to 2026-03-02 22:00 UTC" in s for s in seen)
        assert fake.counters["twilio_requests"] == 4


def test_held_past_max_hold_hours_stay_pending_and_the_next_run_sends_them(luigi_cfg, tmp_path, var_path, fake_env):
    rows = quiet_rows()
    clock = FakeClock(datetime.datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    sent_at: dict[str, datetime.datetime] = {}
    with FakeProvider(on_accept=lambda msgs: sent_at.update({m["to"]: clock.utc() for m in msgs})) as fake:
        load(luigi_cfg, tmp_path, rows, campaign={"frequency_cap": "off"})
        point_at(luigi_cfg, fake, "sms", quiet_hours="20:00-10:00", progress_interval=600, max_hold_hours=8)
        result = send("sms", clock=clock)
        assert set(sent_at) == {"+14155550100", "+12125550101"}  # London opens at 10:00 UTC, within 8 h
        assert result.counts["pending"] == 2 and not result.complete
        with pytest.raises(RecipientsHeldError, match=r"2 recipient.* until 2026-03-02 15:00 UTC.*1 without a known "
                                                      "time zone"):
            outcome.check_held(result.as_dict(), send_config.channel_config("sms"))
        ledger = ledger_rows(var_path, "sms")
        assert ledger[rows[3]["customer_id"]]["state"] == "pending" and "never overlap" in \
            ledger[rows[3]["customer_id"]]["reason"]

        luigi_cfg.set("sms_campaign", "default_timezone", "America/Chicago")
        clock.set(datetime.datetime(2026, 3, 2, 15, 30, tzinfo=UTC))  # the next run: 10:30 New York, 09:30 Chicago
        again = send("sms", clock=clock)
        assert again.complete and again.counts["sent"] == 4
        assert sent_at["+12125550100"] == datetime.datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
        assert sent_at["+18005550199"] == datetime.datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # 10:00 in Chicago
        assert fake.counters["twilio_requests"] == 4


def test_quiet_hours_do_not_apply_to_the_outbox_by_default(luigi_cfg, tmp_path, var_path):
    luigi_cfg.remove("sms_campaign", "quiet_hours")  # the project's default (the tests' config sets off)
    load(luigi_cfg, tmp_path, quiet_rows(), sms_campaign={"rate": 500, "burst": 100})
    assert send_config.channel_config("sms").quiet_hours == "auto"
    clock = FakeClock(datetime.datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    assert send("sms", clock=clock).counts["sent"] == 4


def test_one_click_unsubscribe_over_http_records_only_valid_posts(luigi_cfg, tmp_path, var_path):
    rows = customers(3)
    load(luigi_cfg, tmp_path, rows, email_campaign={"rate": 500, "burst": 100}, campaign={"frequency_cap": "off"})
    from tasks.channels.unsubscribe import make_token

    key = SendKey("demo", DAY.isoformat(), "email")
    token = make_token(SECRET.encode(), key, rows[0]["customer_id"])
    with SuppressionStore(suppressions_path(var_path)) as store, EventStore(events_path(var_path)) as events, \
            serving(web.build_app(events, store, var_path, web.WebSettings(), {"UNSUBSCRIBE_SECRET": SECRET})) as url:
        base = f"{url}/u"
        page = requests.get(f"{base}/{token}", timeout=5)
        assert page.status_code == 200 and '<form method="post">' in page.text
        assert store.entries() == [], "a GET (link scanners) never unsubscribes"
        payload, mac = token.split(".")
        for bad in (f"{payload}.{mac[::-1]}", "garbage", f"{make_token(b'x' * 32, key, 'C1')}"):
            answer = requests.post(f"{base}/{bad}", data="List-Unsubscribe=One-Click", timeout=5)
            assert answer.status_code == 400
        assert requests.put(f"{base}/{token}", timeout=5).status_code == 405
        assert store.entries() == []
        done = requests.post(f"{base}/{token}", data="List-Unsubscribe=One-Click", timeout=5,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert done.status_code == 200 and "Unsubscribed" in done.text
        assert {(e.kind, e.value, e.source) for e in store.entries()} == {
            ("customer", rows[0]["customer_id"], "unsubscribe"), ("address", rows[0]["email"], "unsubscribe")}
    result = send("email", campaign="next")
    assert (result.counts["sent"], result.counts["suppressed"]) == (2, 1)
    assert ledger_rows(var_path, "email", "next")[rows[0]["customer_id"]]["state"] == "suppressed"


def test_preview_counts_future_states_renders_masked_and_contacts_or_writes_nothing(
        luigi_cfg, tmp_path, var_path, fake_env, capsys):
    rows = customers(6, r0={"first_name": "Ann"})
    rows[2]["phone"] = rows[1]["phone"]
    listed = tmp_path / "s.csv"
    listed.write_text(f"channel,address\nall,{rows[3]['email']}\nsms,{rows[4]['phone']}\n")
    with FakeProvider() as fake:
        names = list(dict.fromkeys(k for r in rows for k in r))
        with open(tmp_path / "customers.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=names)
            writer.writeheader()
            writer.writerows(rows)
        luigi_cfg.set("segments", "input_path", tmp_path / "customers.csv")
        luigi_cfg.set("campaign", "suppression_list", listed)
        point_at(luigi_cfg, fake, "sms", quiet_hours="off")
        point_at(luigi_cfg, fake, "email")
        clock = FakeClock(datetime.datetime(2026, 3, 2, 15, 0, tzinfo=UTC))
        reports = preview_core.preview(DAY, "demo", ["email", "sms"], clock=clock)
        assert reports["email"]["counts"] == {"sent": 5, "suppressed": 1}
        assert reports["sms"]["counts"] == {"duplicate_address": 1, "sent": 4, "suppressed": 1}
        assert fake.counters["requests"] == 0
        assert not ledger_path(var_path, "sms").exists() and not suppressions_path(var_path).exists()
        assert not (var_path / "segments").exists(), "LoadSegments' outputs are not written by a preview"
        folder = preview_core.preview_dir(var_path, DAY, "demo")
        written = json.loads((folder / "email.json").read_text())
        assert len(written["messages"]) == 5 and written["messages"][0]["body"].startswith("Hi Ann,")
        text = (folder / "email.json").read_text() + (folder / "sms.json").read_text()
        assert all(r["email"] not in text and r["phone"] not in text for r in rows)
        assert oct(folder.stat().st_mode & 0o777) == "0o700"

        assert main(["preview", "--date", DAY.isoformat(), "--channel", "sms"]) == 0
        out = capsys.readouterr().out
        assert "sms (twilio, template demo.toml): 1 duplicate_address, 4 sent, 1 suppressed of 6" in out
        assert fake.counters["requests"] == 0


def test_the_demo_shows_suppressed_and_duplicate_address_recipients(luigi_cfg, var_path):
    for channel in ("email", "sms"):
        luigi_cfg.set(f"{channel}_campaign", "rate", 2000).set(f"{channel}_campaign", "burst", 500)
    assert build(TASKS["email"](date=DAY), TASKS["sms"](date=DAY), workers=2)
    for channel in ("email", "sms"):
        result = json.loads(wiring.result_path(var_path, DAY, "demo", channel, "all").read_text())
        assert result["counts"]["suppressed"] >= 1 and result["counts"]["duplicate_address"] >= 1, result["counts"]
        assert result["counts"]["failed"] == 0
    box = var_path / "outbox" / "email" / f"demo-{DAY}.jsonl"
    outbox = [json.loads(line) for line in box.read_text().splitlines()]
    assert collections.Counter(m["to"] for m in outbox).most_common(1)[0][1] == 1
    assert "ken.torvalds2@example.com" not in {m["to"] for m in outbox}  # on the demo suppression list


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_sharded_send_screens_across_shards_and_keeps_opt_outs_in_the_state_backend(
        luigi_cfg, tmp_path, var_path, fake_env, request, backend):
    if backend == "postgres":
        request.getfixturevalue("postgres_state")
    rows = customers(24)
    for i in (7, 13, 19):  # three more customer ids with customer 1's phone, in whichever shards they hash to
        rows[i]["phone"] = rows[1]["phone"]
    with FakeProvider(opted_out={rows[2]["phone"]}) as fake:
        load(luigi_cfg, tmp_path, rows)
        point_at(luigi_cfg, fake, "sms", shards=3, concurrency=2)
        assert main(["suppress", "add", "sms", rows[3]["phone"]]) == 0
        assert build(TASKS["sms"](date=DAY), workers=3)
        delivered = collections.Counter(m["to"] for m in fake.accepted())
    assert max(delivered.values()) == 1, "one message per address, whatever shard each customer id is in"
    combined = result(var_path, "sms")
    assert combined["extra"]["shards"] == 3 and combined["complete"]
    counts = combined["counts"]
    assert (counts["sent"], counts["duplicate_address"], counts["suppressed"], counts["failed"]) == (19, 3, 2, 0)
    ledger = ledger_rows(var_path, "sms")
    assert {cid for cid, r in ledger.items() if r["state"] == "duplicate_address"} == {
        rows[i]["customer_id"] for i in (7, 13, 19)}
    assert "21610" in ledger[rows[2]["customer_id"]]["reason"]
    with compliance.open_suppressions(var_path) as store:  # the provider's opt-out, where every host sees it
        assert store.find("sms", rows[2]["phone"]).source == "twilio"
    assert (var_path / "ledger" / "suppressions.sqlite3").exists() == (backend == "sqlite")
