"""Claims are atomic: two processes sending one campaign from one ledger, with no run lock between
them, never message a recipient twice and together message everyone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tasks.channels.ledger import SendKey, SendLedger

KEY = SendKey("spring", "2026-03-02", "email")
RECIPIENTS = 400

# One sender process: waits for the start file, then runs the sender's pass with the run lock
# taken out of the way (the lock is what normally keeps a second process off the send).
WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tasks.channels.ledger import SendKey, SendLedger
    from tasks.channels.limiter import ChannelLimiter
    from tasks.channels.outbox import OutboxClient
    from tasks.channels.sender import ListSource, Recipient, SendJob, SendPolicy, run_pass

    ledger_path, outbox, start, count = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    key = SendKey("spring", "2026-03-02", "email")
    recipients = [Recipient(f"c{i:04d}", f"user{i}@example.com", {}) for i in range(count)]

    class SlowOutbox(OutboxClient):  # a provider's latency, so the two passes overlap
        def send(self, messages):
            time.sleep(0.005)
            return super().send(messages)

    Path(str(outbox) + ".ready").touch()
    while not start.exists():
        time.sleep(0.005)
    with SendLedger(ledger_path) as ledger:
        client = SlowOutbox(outbox, "email")
        try:
            run_pass(SendJob(key, ListSource(recipients), lambda r: {"subject": "s", "body": "b"}, client,
                             ChannelLimiter(100_000, 1_000, "email"), ledger, SendPolicy(concurrency=4)))
        finally:
            client.close()
""")


def test_two_processes_without_the_lock_send_each_recipient_once(tmp_path: Path) -> None:
    ledger_path, start = tmp_path / "ledger" / "email.sqlite3", tmp_path / "start"
    with SendLedger(ledger_path) as ledger:  # both see every recipient pending from the start
        ledger.seed(KEY, [f"c{i:04d}" for i in range(RECIPIENTS)])
    outboxes = [tmp_path / f"outbox-{n}.jsonl" for n in (1, 2)]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(ledger_path), str(box), str(start),
                               str(RECIPIENTS)], cwd=Path(__file__).parents[2]) for box in outboxes]
    deadline = time.monotonic() + 60
    while not all(Path(f"{box}.ready").exists() for box in outboxes):  # both imported and waiting
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    start.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]

    sent = [json.loads(line)["customer_id"] for box in outboxes for line in box.read_text().splitlines()]
    assert len(sent) == len(set(sent)), "a recipient was messaged twice"
    assert set(sent) == {f"c{i:04d}" for i in range(RECIPIENTS)}
    per_process = [len(box.read_text().splitlines()) for box in outboxes]
    assert all(n > 0 for n in per_process), per_process  # both really sent: the claims did race


def test_a_claim_returns_only_the_rows_it_took(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with SendLedger(path) as first, SendLedger(path) as second:
        first.seed(KEY, ["a", "b", "c"])
        assert first.mark_sending(KEY, ["a", "b"]) == ["a", "b"]
        assert second.mark_sending(KEY, ["a", "b", "c"]) == ["c"]  # a and b are not pending any more
        first.mark_sent(KEY, [("a", "m1")])
        assert second.mark_sending(KEY, ["a"]) == []
