"""Several hosts, one send: separate processes with separate TASKS_VAR_DIR against one luigid and one
Postgres, a sharded SMS send to the fake Twilio (another process), one host SIGKILLed mid-send, and a
failover host finishing the day.

Checked from the provider's side (its accepted log): nobody messaged twice, and the shared rate
limit held across hosts (no sliding second above rate + burst); from ours: every recipient final in
the shared ledger, the shards run by more than one host, luigid showing the shards, the channel's
result adding up to the segment.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks import state
from tasks.channels.ledger import SendKey, SendLedger
from tests.conftest import REPO
from tests.e2e.conftest import Luigid
from tests.fakes.providers import read_accepted
from tests.fakes.timing import max_in_window
from tests.tasks.campaign_helpers import DAY, write_customers

COUNT = 240
SHARDS = 3
RATE, BURST = 20, 5


def host(env: dict[str, str], var_dir: Path, log, *scheduler: str) -> subprocess.Popen:
    """One host: its own var/ folder, `luigi` with two workers, in its own process group."""
    var_dir.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "luigi", "--module", "tasks.campaign.tasks", "SendSmsCampaign",
           "--date", DAY.isoformat(), "--workers", "2", "--no-lock", *scheduler]  # --no-lock: the hosts share /tmp
    return subprocess.Popen(cmd, cwd=REPO, env={**env, "TASKS_VAR_DIR": str(var_dir)}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.slow
def test_hosts_share_one_send_survive_a_sigkill_and_never_message_twice(
        postgres_state, luigi_cfg, tmp_path, subprocess_env):
    rows = write_customers(tmp_path / "customers.csv", COUNT)
    accepted_log = tmp_path / "accepted.jsonl"
    fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.providers", "--log", str(accepted_log),
                             "--latency", "0.05"], cwd=REPO, env=subprocess_env, stdout=subprocess.PIPE, text=True)
    luigid = None
    try:
        info = json.loads(fake.stdout.readline())
        luigi_cfg.set("segments", "input_path", tmp_path / "customers.csv")
        for key, value in {"provider": "twilio", "base_url": info["base_url"], "rate": RATE, "burst": BURST,
                           "concurrency": 4, "timeout": 5, "shards": SHARDS, "retry_count": 1}.items():
            luigi_cfg.set("sms_campaign", key, value)
        env = {**subprocess_env, **info["env"], "TASKS_STATE_DSN": postgres_state}
        luigid = Luigid(env, tmp_path / "luigid.out")
        scheduler = ("--scheduler-host", "127.0.0.1", "--scheduler-port", str(luigid.port))
        output = tmp_path / "hosts.log"
        with open(output, "wb") as log:
            hosts = [host(env, tmp_path / f"host{n}", log, *scheduler) for n in (1, 2, 3)]
            deadline = time.monotonic() + 90
            while len(read_accepted(accepted_log)) < COUNT // 3:
                assert time.monotonic() < deadline, "the hosts made no progress"
                assert any(p.poll() is None for p in hosts), "every host exited before the kill"
                time.sleep(0.02)
            running = luigid.api("task_list", {"status": "RUNNING", "upstream_status": "", "search": "SendShard"})
            assert len(running) >= 2, f"the shards did not run side by side: {sorted(running)}"
            # a host running a shard dies (its whole process group) with claimed rows in `sending`
            workers = {t["worker_running"] for t in running.values()}
            victim = next(p for p in hosts if any(f"pid={p.pid})" in w for w in workers))
            os.killpg(victim.pid, signal.SIGKILL)
            for proc in hosts:
                proc.wait(timeout=120)
            shard_ids = luigid.api("task_list", {"status": "", "upstream_status": "", "search": "SendShard"})
            assert len(shard_ids) == SHARDS, sorted(shard_ids)
            before_failover = len(read_accepted(accepted_log))
            # a failover host with no luigid finishes the day from the shared state
            failover = host(env, tmp_path / "host4", log, "--local-scheduler")
            assert failover.wait(timeout=120) == 0, output.read_text(errors="replace")[-3000:]
            assert len(read_accepted(accepted_log)) > before_failover, "the failover host sent nothing"
    finally:
        if luigid is not None:
            luigid.stop()
        fake.terminate()
        fake.wait(timeout=10)

    accepted = read_accepted(accepted_log)
    delivered = collections.Counter(m["to"] for m in accepted)
    assert max(delivered.values()) == 1, "a customer received two messages"
    # one token bucket for every host: never more than rate + burst in any sliding second (+4 for the jitter
    # between taking a token and the provider logging the request, as in test_campaign_sends); three buckets
    # of their own would allow 3 x (rate + burst)
    assert max_in_window(sorted(m["at"] for m in accepted), 1.0) <= RATE + BURST + 4

    with SendLedger(state.database(tmp_path / "unused.sqlite3")) as ledger:
        ledger_rows = {r["customer_id"]: r for r in ledger.rows(SendKey("demo", DAY.isoformat(), "sms"))}
    assert len(ledger_rows) == COUNT
    states = collections.Counter(r["state"] for r in ledger_rows.values())
    assert set(states) <= {"sent", "unknown"}, states
    assert all("previous run stopped" in r["reason"] for r in ledger_rows.values() if r["state"] == "unknown")
    phone = {r["customer_id"]: r["phone"] for r in rows}
    assert {phone[c] for c, r in ledger_rows.items() if r["state"] == "sent"} <= set(delivered)
    assert len({r["shard"] for r in ledger_rows.values()}) == SHARDS

    shard_files = sorted(tmp_path.glob("host*/campaigns/*/demo/sms-all.shard-*.json"))
    assert len({p.parts[len(tmp_path.parts)] for p in shard_files}) >= 2, "the shards ran on one host only"
    result = json.loads(next(tmp_path.glob("host4/campaigns/*/demo/sms-all.json")).read_text())
    assert result["target"] == COUNT and result["extra"]["shards"] == SHARDS
    assert result["counts"]["sent"] == states["sent"] and result["counts"]["unknown"] == states["unknown"]
    assert result["complete"] is True
