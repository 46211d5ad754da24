"""The three channel sends through real luigi.build, against the outbox and the fake provider server.

Every send runs on a small customer file (LoadSegments built for real), small retry delays
and rates high enough to keep each test to a few seconds. The fake's own token bucket has
the client's rate and a burst 2 larger, to absorb loopback jitter: a send that ignored its
limit would still draw dozens of 429s.
"""

from __future__ import annotations

import collections
import json
import os

import pytest

from tasks.campaign.tasks import LoadSegments
from tasks.channels.outbox import outbox_path
from tasks.errors import AuthApiError, CampaignFailedError
from tests.fakes.providers import FakeProvider, Faults
from tests.tasks.campaign_helpers import (
    ADDRESS,
    DAY,
    TASKS,
    build,
    ledger_rows,
    result,
    setup_campaign,
    write_customers,
)

PROVIDER = {"email": "sendgrid", "sms": "twilio", "push": "fcm"}


@pytest.fixture
def fake_env(monkeypatch):
    for name, value in FakeProvider.env().items():
        monkeypatch.setenv(name, value)


def point_at(luigi_cfg, fake: FakeProvider, channel: str, **settings: object) -> None:
    base = {"provider": PROVIDER[channel], "base_url": fake.base_url, "retry_delay": 0.2, "timeout": 2,
            "progress_interval": 0.2}
    for key, value in {**base, **settings}.items():
        luigi_cfg.set(f"{channel}_campaign", key, value)


def test_outbox_sends_overlap_reach_each_customer_once_and_rerun_is_a_noop(luigi_cfg, tmp_path, var_path):
    limits = {"rate": 20, "burst": 5}
    rows = setup_campaign(luigi_cfg, tmp_path, 60, email=limits, sms=limits,
                          push={**limits, "segment": "premium"})
    tasks = [TASKS["email"](date=DAY), TASKS["sms"](date=DAY), TASKS["push"](date=DAY)]
    assert build(*tasks, workers=3)

    spans = {}
    for channel, segment in (("email", "all"), ("sms", "all"), ("push", "premium")):
        box = outbox_path(var_path, channel, "demo", DAY.isoformat())
        lines = [json.loads(x) for x in box.read_text().splitlines()]
        expected = {r["customer_id"] for r in rows if segment == "all" or r["segment"] == segment}
        ids = [line["customer_id"] for line in lines]
        assert collections.Counter(ids).most_common(1)[0][1] == 1, f"{channel}: a customer got two messages"
        assert set(ids) == expected
        by_id = {r["customer_id"]: r for r in rows}
        assert all(line["to"] == by_id[line["customer_id"]][ADDRESS[channel]] for line in lines)
        spans[channel] = (min(line["queued_at"] for line in lines), max(line["queued_at"] for line in lines))
        res = result(var_path, channel, segment)
        assert res["target"] == len(expected) and res["counts"]["sent"] == len(expected)
        assert res["complete"] and res["provider"] == "outbox" and res["configured_rate"] == 20
        # 20/s after a burst of 5: 60 messages cannot take less than (60 - 5) / 20 s
        assert res["duration_s"] >= (len(expected) - 5) / 20 * 0.9
    latest_start = max(start for start, _ in spans.values())
    earliest_end = min(end for _, end in spans.values())
    assert latest_start < earliest_end, f"the three sends did not overlap: {spans}"

    mtimes = {c: os.stat(outbox_path(var_path, c, "demo", DAY.isoformat())).st_mtime_ns for c in TASKS}
    assert build(*tasks, workers=3)
    assert mtimes == {c: os.stat(outbox_path(var_path, c, "demo", DAY.isoformat())).st_mtime_ns for c in TASKS}


def test_providers_wire_formats_validate_and_pacing_causes_no_429(luigi_cfg, tmp_path, var_path, fake_env):
    rate, burst = 15, 4
    # The fake's own bucket has a little slack over ours: on a loaded 2-core machine requests that
    # our limiter spaced correctly can reach the server bunched up by scheduling delays. Without
    # pacing, 45 requests per provider at concurrency 8 arrive far above rate + burst + 4.
    with FakeProvider(rate=rate, burst=burst + 6, latency=0.02) as fake:
        rows = setup_campaign(luigi_cfg, tmp_path, 45)
        for channel in TASKS:
            point_at(luigi_cfg, fake, channel, rate=rate, burst=burst)
        luigi_cfg.set("email_campaign", "batch_size", 10)
        assert build(*(TASKS[c](date=DAY) for c in TASKS), workers=3)

        assert fake.counters["spec_errors"] == 0, fake.spec_problems
        assert fake.counters["throttled"] == 0, "our own pacing drew 429s"
        assert fake.counters["auth_errors"] == 0
        for provider in ("sendgrid", "twilio", "fcm"):
            assert fake.max_requests_in_window(1.0, provider) <= rate + burst + 4
        accepted = fake.accepted()
        for channel, provider in PROVIDER.items():
            got = collections.Counter(m["to"] for m in accepted if m["provider"] == provider)
            assert set(got) == {r[ADDRESS[channel]] for r in rows} and max(got.values()) == 1
            assert {row["state"] for row in ledger_rows(var_path, channel).values()} == {"sent"}
        assert fake.counters["sendgrid_requests"] == 5, "45 e-mails in batches of 10 personalizations"
        sendgrid_ids = {m["send_id"] for m in accepted if m["provider"] == "sendgrid"}
        assert f"demo/{DAY.isoformat()}/email/T00000" in sendgrid_ids
        assert all(ledger_rows(var_path, "sms")[r["customer_id"]]["provider_message_id"].startswith("SM") for r in rows)


def test_server_errors_and_429_are_retried_and_permanent_failures_are_not(luigi_cfg, tmp_path, var_path, fake_env):
    faults = Faults(script={1: "503", 2: "429", 4: "500"})
    with FakeProvider(faults=faults) as fake:
        rows = setup_campaign(luigi_cfg, tmp_path, 12)
        bad = {rows[5]["phone"], rows[9]["phone"]}
        fake.bad_addresses = bad
        point_at(luigi_cfg, fake, "sms", rate=50, burst=5, concurrency=2, max_failure_ratio=0.5)
        assert build(TASKS["sms"](date=DAY))

        per_number = collections.Counter(m["to"] for m in fake.accepted())
        assert set(per_number) == {r["phone"] for r in rows} - bad and max(per_number.values()) == 1
        ledger = ledger_rows(var_path, "sms")
        failed = {cid for cid, row in ledger.items() if row["state"] == "failed"}
        assert failed == {rows[5]["customer_id"], rows[9]["customer_id"]}
        assert all("21211" in ledger[cid]["reason"] and ledger[cid]["attempts"] == 1 for cid in failed)
        assert fake.counters["twilio_requests"] == 12 + 3, "3 retries, none for the permanent failures"
        assert sorted(row["attempts"] for row in ledger.values()).count(2) == 3
        res = result(var_path, "sms")
        assert (res["counts"]["sent"], res["counts"]["failed"], res["retries"]) == (10, 2, 3)


def test_exhausted_retries_fail_and_too_many_failures_fail_the_task(luigi_cfg, tmp_path, var_path, fake_env):
    with FakeProvider(faults=Faults(ratio=1.0, kind="503", providers=("fcm",))) as fake:
        setup_campaign(luigi_cfg, tmp_path, 6)
        point_at(luigi_cfg, fake, "push", rate=50, burst=10, max_attempts=2)
        task = TASKS["push"](date=DAY)
        with pytest.raises(CampaignFailedError, match="6 of 6 recipients failed"):
            task.run()
        assert fake.counters["fcm_requests"] == 12, "2 attempts each, then failed"
        assert fake.accepted() == []
        assert {row["reason"] for row in ledger_rows(var_path, "push").values()} == {
            "gave up after 2 attempt(s): fcm: HTTP 503 UNAVAILABLE"
        }
        assert not build(task), "rerun: the failures are final, so the task fails again without sending"
        assert fake.counters["fcm_requests"] == 12
        assert not os.path.exists(task.output().path)


def test_timeouts_become_unknown_not_resent_unless_asked_once(luigi_cfg, tmp_path, var_path, fake_env):
    faults = Faults(script={2: "timeout", 4: "drop"}, hang=1.0)
    with FakeProvider(faults=faults) as fake:
        rows = setup_campaign(luigi_cfg, tmp_path, 8)
        point_at(luigi_cfg, fake, "push", rate=50, burst=10, concurrency=1, timeout=0.4)
        task = TASKS["push"](date=DAY)
        assert build(task)
        res = result(var_path, "push")
        assert (res["counts"]["sent"], res["counts"]["unknown"]) == (6, 2)
        unknown = {cid for cid, row in ledger_rows(var_path, "push").items() if row["state"] == "unknown"}
        delivered = collections.Counter(m["customer_id"] for m in fake.accepted())
        assert set(delivered) == {r["customer_id"] for r in rows}, "the timed-out pushes did reach the provider"
        assert max(delivered.values()) == 1 and fake.counters["fcm_requests"] == 8, "and were not sent again"

        # the operator opts in: each unknown is re-sent once, then never again
        luigi_cfg.set("push_campaign", "resend_unknown", "true")
        os.remove(task.output().path)
        assert build(task)
        assert fake.counters["fcm_requests"] == 10
        assert {cid for cid, n in collections.Counter(m["customer_id"] for m in fake.accepted()).items() if n == 2} \
            == unknown
        assert all(ledger_rows(var_path, "push")[cid]["unknown_resends"] == 1 for cid in unknown)
        os.remove(task.output().path)
        assert build(task)
        assert fake.counters["fcm_requests"] == 10


def test_rejected_credentials_stop_the_send_and_fail_nobody(luigi_cfg, tmp_path, var_path, fake_env, monkeypatch):
    with FakeProvider() as fake:
        setup_campaign(luigi_cfg, tmp_path, 5)
        point_at(luigi_cfg, fake, "email", rate=50, burst=10)
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.wrong-key-value")
        task = TASKS["email"](date=DAY)
        with pytest.raises(AuthApiError) as info:
            task.run()
        assert "wrong-key-value" not in str(info.value)
        assert {row["state"] for row in ledger_rows(var_path, "email").values()} == {"pending"}
        monkeypatch.delenv("SENDGRID_API_KEY")
        with pytest.raises(Exception, match="SENDGRID_API_KEY is not set"):
            task.run()


def test_progress_reaches_the_luigi_shell(luigi_cfg, tmp_path, var_path):
    setup_campaign(luigi_cfg, tmp_path, 30, sms={"rate": 20, "burst": 2, "progress_interval": 0.2})
    task = TASKS["sms"](date=DAY)
    seen: list[tuple[str, float]] = []
    task.set_status_message = lambda message: seen.append(("status", message))
    task.set_progress_percentage = lambda pct: seen.append(("pct", pct))
    task.run()
    statuses = [m for kind, m in seen if kind == "status"]
    percents = [p for kind, p in seen if kind == "pct"]
    assert len(statuses) >= 3 and "remaining of 30" in statuses[0] and "msg/s" in statuses[0]
    assert percents == sorted(percents) and percents[-1] == 100 and 0 < percents[1] < 100


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_sharded_send_keeps_one_limit_and_reaches_each_customer_once(luigi_cfg, tmp_path, var_path, fake_env,
                                                                      request, backend):
    if backend == "postgres":
        request.getfixturevalue("postgres_state")
    rate, burst, count = 30, 5, 90
    rows = setup_campaign(luigi_cfg, tmp_path, count)
    with FakeProvider(latency=0.02) as fake:
        point_at(luigi_cfg, fake, "sms", rate=rate, burst=burst, concurrency=3, shards=3)
        assert build(TASKS["sms"](date=DAY), workers=3)
        # three processes, one token bucket (three of their own would allow 3 x (rate + burst))
        assert fake.max_requests_in_window(1.0, "twilio") <= rate + burst + 4
        delivered = collections.Counter(m["to"] for m in fake.accepted())
        # a re-run is a no-op: every task is complete (files, or marker rows with Postgres state)
        assert build(TASKS["sms"](date=DAY), workers=3)
        assert len(fake.accepted()) == count
    assert max(delivered.values()) == 1 and len(delivered) == count
    assert set(delivered) == {r["phone"] for r in rows}
    combined = result(var_path, "sms")
    assert combined["target"] == count and combined["counts"]["sent"] == count
    assert combined["extra"]["shards"] == 3 and combined["complete"]
    parts = sorted(var_path.glob(f"campaigns/{DAY}/demo/sms-all.shard-*-of-3.json"))
    assert [json.loads(p.read_text())["extra"]["shard"] for p in parts] == [0, 1, 2]
    assert sum(json.loads(p.read_text())["target"] for p in parts) == count


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_shards_require_nothing_and_load_the_segment_file_on_their_host(luigi_cfg, tmp_path, var_path, request,
                                                                        backend):
    """The task graph is the same on both backends: the shards of a send require no task, and the first shard to
    run loads the segment file on its host (the others wait for it, under the host's lock, and find it done)."""
    if backend == "postgres":
        request.getfixturevalue("postgres_state")
    rows = write_customers(tmp_path / "customers.csv", 30)
    luigi_cfg.set("segments", "input_path", tmp_path / "customers.csv")
    luigi_cfg.set("sms_campaign", "shards", 3)
    task = TASKS["sms"](date=DAY)
    assert [shard.requires() for shard in task.shards()] == [[], [], []]
    assert not LoadSegments(date=DAY).complete()
    assert build(task, workers=3)
    assert LoadSegments(date=DAY).complete(), "the shards loaded the segment file here"
    combined = result(var_path, "sms")
    assert combined["counts"]["sent"] == len(rows) and combined["extra"]["shards"] == 3
    sent = [json.loads(line)["customer_id"] for line in outbox_path(var_path, "sms", "demo", DAY.isoformat())
            .read_text().splitlines()]
    assert sorted(sent) == sorted(r["customer_id"] for r in rows)  # each customer once
