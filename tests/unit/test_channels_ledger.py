"""The send ledger's state machine on a real SQLite file: recovery, resend-once, run lock."""

from __future__ import annotations

import sqlite3

import pytest

from tasks.channels.ledger import SendKey, SendLedger
from tasks.errors import ConfigError

KEY = SendKey("spring", "2026-03-02", "sms")


@pytest.fixture
def ledger(tmp_path):
    with SendLedger(tmp_path / "ledger" / "sms.sqlite3") as led:
        yield led


def test_seed_is_idempotent_and_keyed_by_send(ledger):
    assert ledger.seed(KEY, ["a", "b", "c"]) == 3
    assert ledger.seed(KEY, ["a", "b", "c", "d"]) == 1
    other = SendKey("spring", "2026-03-03", "sms")
    assert ledger.seed(other, ["a"]) == 1
    assert ledger.states(KEY) == {"a": "pending", "b": "pending", "c": "pending", "d": "pending"}
    assert ledger.states(other) == {"a": "pending"}


def test_state_machine_sent_failed_retry(ledger):
    ledger.seed(KEY, ["a", "b", "c"])
    ledger.mark_sending(KEY, ["a", "b", "c"])
    ledger.mark_sent(KEY, [("a", "SM1")])
    ledger.mark_failed(KEY, ["b"], "twilio: HTTP 400 code 21211: invalid 'To' phone number")
    ledger.mark_retry(KEY, ["c"], "twilio: HTTP 503", next_attempt_at=123.0)
    rows = {r["customer_id"]: r for r in ledger.rows(KEY)}
    assert (rows["a"]["state"], rows["a"]["provider_message_id"], rows["a"]["attempts"]) == ("sent", "SM1", 1)
    assert rows["b"]["state"] == "failed" and "21211" in rows["b"]["reason"]
    assert (rows["c"]["state"], rows["c"]["next_attempt_at"]) == ("pending", 123.0)
    assert [(p.customer_id, p.attempts) for p in ledger.pending(KEY)] == [("c", 1)]
    # a final row never moves back: a late retry or sending mark is ignored
    ledger.mark_retry(KEY, ["a"], "late", 0.0)
    ledger.mark_sending(KEY, ["a"])
    assert ledger.states(KEY)["a"] == "sent"


def test_sending_left_by_a_dead_run_becomes_unknown_and_is_resent_at_most_once(ledger, tmp_path):
    ledger.seed(KEY, ["a", "b"])
    ledger.mark_sending(KEY, ["a"])
    # a second connection (another process) sees the committed `sending` row
    conn = sqlite3.connect(tmp_path / "ledger" / "sms.sqlite3")
    assert conn.execute("SELECT state FROM sends WHERE customer_id = 'a'").fetchone() == ("sending",)
    conn.close()
    assert ledger.recover_in_flight(KEY) == 1
    assert ledger.states(KEY) == {"a": "unknown", "b": "pending"}
    assert ledger.recover_in_flight(KEY) == 0
    assert ledger.reopen_unknown(KEY) == 1
    assert ledger.states(KEY)["a"] == "pending"
    ledger.mark_sending(KEY, ["a"])
    ledger.mark_unknown(KEY, ["a"], "read timeout")
    assert ledger.reopen_unknown(KEY) == 0, "an unknown row is re-sent at most once"
    assert ledger.rows(KEY)[0]["unknown_resends"] == 1


def test_wal_mode_and_states_are_checked(ledger):
    assert ledger._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(sqlite3.IntegrityError):
        ledger._conn.execute(
            "INSERT INTO sends (campaign, date, channel, customer_id, state, created_at, updated_at) "
            "VALUES ('x', 'd', 'sms', 'z', 'bogus', 0, 0)"
        )


def test_run_lock_refuses_a_second_live_run(ledger, tmp_path):
    with ledger.run_lock(KEY):
        with SendLedger(tmp_path / "ledger" / "sms.sqlite3") as second:
            with pytest.raises(ConfigError, match="another process"), second.run_lock(KEY):
                pass
    with ledger.run_lock(KEY):  # released on exit
        pass


def test_many_rows_commit_fast_enough_for_a_big_send(ledger):
    ids = [f"C{i:06d}" for i in range(20_000)]
    ledger.seed(KEY, ids)
    for cid in ids[:2000]:  # one commit per state change, as the sender does
        ledger.mark_sending(KEY, [cid])
        ledger.mark_sent(KEY, [(cid, None)])
    counts = {}
    for state in ledger.states(KEY).values():
        counts[state] = counts.get(state, 0) + 1
    assert counts == {"sent": 2000, "pending": 18_000}
