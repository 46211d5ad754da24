"""Crash and resume: a real `luigi` subprocess sending SMS to the fake Twilio (another
subprocess) is SIGKILLed at seeded points mid-send, then re-run to completion.

Checked from the provider's side (its accepted log, written by a process the kills never
touch): no customer received two messages; and from ours: every customer ends sent, failed
or unknown, `sent` only for delivered customers, and no phone number in the logs unmasked.
"""

from __future__ import annotations

import collections
import json
import random
import signal
import subprocess
import sys
import time

import pytest

from tasks import pii
from tasks.channels.ledger import SendKey, SendLedger, ledger_path
from tests.conftest import REPO
from tests.fakes.providers import read_accepted
from tests.tasks.campaign_helpers import DAY, setup_campaign

COUNT = 90


def luigi_send(env: dict[str, str], log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "luigi", "--module", "tasks.campaign.tasks", "SendSmsCampaign",
           "--date", DAY.isoformat(), "--local-scheduler"]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_sigkill_mid_send_then_rerun_never_messages_anyone_twice(luigi_cfg, tmp_path, var_path, subprocess_env):
    accepted_log = tmp_path / "accepted.jsonl"
    rows = setup_campaign(luigi_cfg, tmp_path, COUNT)
    bad = [rows[3]["phone"], rows[50]["phone"]]
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.providers", "--log", str(accepted_log), "--latency", "0.08",
         "--rate", "40", "--burst", "12", *[arg for phone in bad for arg in ("--bad-address", phone)]],
        cwd=REPO, env=subprocess_env, stdout=subprocess.PIPE, text=True,
    )
    try:
        info = json.loads(fake.stdout.readline())
        for key, value in {"provider": "twilio", "base_url": info["base_url"], "rate": 30, "burst": 5,
                           "concurrency": 4, "retry_delay": 0.2, "timeout": 2, "max_failure_ratio": 0.5}.items():
            luigi_cfg.set("sms_campaign", key, value)
        env = {**subprocess_env, **info["env"]}
        output = tmp_path / "runs.log"
        kills = sorted(random.Random(20260302).sample(range(8, 70), 3))
        with open(output, "wb") as log:
            for threshold in kills:
                proc = luigi_send(env, log)
                deadline = time.monotonic() + 30
                while proc.poll() is None and len(read_accepted(accepted_log)) < threshold:
                    assert time.monotonic() < deadline, "the send made no progress"
                    time.sleep(0.01)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            final = luigi_send(env, log)
            assert final.wait(timeout=60) == 0
    finally:
        fake.terminate()
        fake.wait(timeout=10)

    delivered = collections.Counter(m["to"] for m in read_accepted(accepted_log))
    assert delivered and max(delivered.values()) == 1, "a customer received two messages"
    with SendLedger(ledger_path(var_path, "sms")) as ledger:
        ledger_rows = {r["customer_id"]: r for r in ledger.rows(SendKey("demo", DAY.isoformat(), "sms"))}
    assert len(ledger_rows) == COUNT
    assert {r["state"] for r in ledger_rows.values()} <= {"sent", "failed", "unknown"}
    phone = {r["customer_id"]: r["phone"] for r in rows}
    for cid, row in ledger_rows.items():
        if row["state"] == "sent":
            assert phone[cid] in delivered, f"{cid} marked sent but the provider never accepted it"
        if row["state"] == "failed":
            assert phone[cid] in bad and phone[cid] not in delivered
    unknown = [cid for cid, r in ledger_rows.items() if r["state"] == "unknown"]
    assert unknown, "no kill hit a request in flight: the crash window was not exercised"
    assert all("previous run stopped" in ledger_rows[cid]["reason"] for cid in unknown)
    result_path = var_path / "campaigns" / DAY.isoformat() / "demo" / "sms-all.json"
    result = json.loads(result_path.read_text())
    assert result["counts"]["unknown"] == len(unknown) and result["target"] == COUNT

    logs = output.read_text(errors="replace")
    assert "SendSmsCampaign" in logs
    leaked = [p for p in phone.values() if p in logs or p[1:] in logs]
    assert not leaked, f"{len(leaked)} raw phone numbers in the logs"
    assert pii.mask_phone(bad[0]) in logs or pii.mask_phone(bad[1]) in logs, "failures are logged, masked"
