"""The send ledger's state machine on a real SQLite file and a real Postgres: recovery, resend-once, locks."""

from __future__ import annotations

import sqlite3
import time

import pytest

from tasks import state
from tasks.channels.ledger import SeedMark, SendKey, SendLedger, Shard
from tasks.errors import ConfigError, LockHeldError, LockLostError
from tasks.state.server import wait_ready

KEY = SendKey("spring", "2026-03-02", "sms")


def open_ledger(tmp_path):
    return SendLedger(state.database(tmp_path / "ledger" / "sms.sqlite3"))


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request, tmp_path):
    if request.param == "postgres":
        request.getfixturevalue("postgres_state")
    with open_ledger(tmp_path) as led:
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
    assert [(p.customer_id, p.attempts) for p in ledger.pending_among(KEY, ["a", "b", "c"])] == [("c", 1)]
    # a final row never moves back: a late retry or sending mark is ignored
    ledger.mark_retry(KEY, ["a"], "late", 0.0)
    ledger.mark_sending(KEY, ["a"])
    assert ledger.states(KEY)["a"] == "sent"


def test_sending_left_by_a_dead_run_becomes_unknown_and_is_resent_at_most_once(ledger, tmp_path):
    ledger.seed(KEY, ["a", "b"])
    ledger.mark_sending(KEY, ["a"])
    # a second ledger (another process) sees the committed `sending` row
    with open_ledger(tmp_path) as second:
        assert second.states(KEY)["a"] == "sending"
    assert ledger.recover_in_flight(KEY) == 1
    assert ledger.states(KEY) == {"a": "unknown", "b": "pending"}
    assert ledger.recover_in_flight(KEY) == 0
    assert ledger.reopen_unknown(KEY) == 1
    assert ledger.states(KEY)["a"] == "pending"
    ledger.mark_sending(KEY, ["a"])
    ledger.mark_unknown(KEY, ["a"], "read timeout")
    assert ledger.reopen_unknown(KEY) == 0, "an unknown row is re-sent at most once"
    assert ledger.rows(KEY)[0]["unknown_resends"] == 1


def test_run_lock_refuses_a_second_live_run(ledger, tmp_path):
    with ledger.run_lock(KEY), open_ledger(tmp_path) as second:
        with pytest.raises(LockHeldError, match="another process"), second.run_lock(KEY):
            pass
        with second.run_lock(KEY, Shard(1, 2)):  # another shard of the same send has its own lock
            pass
    with ledger.run_lock(KEY):  # released on exit
        pass


def test_a_run_whose_advisory_lock_was_lost_claims_nothing_more(postgres_state, tmp_path):
    # the lock's session ended (a server restart, idle_session_timeout, a cut connection) while the run went on:
    # another host could take the lock and recover the send, so the run must not claim another recipient
    import psycopg

    with open_ledger(tmp_path) as ledger, ledger.run_lock(KEY):
        ledger.seed(KEY, ["a", "b", "c"])
        assert ledger.mark_sending(KEY, ["a"]) == ["a"]
        with psycopg.connect(postgres_state, autocommit=True) as admin:
            (killed,) = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchone()
            assert killed
        for _ in range(50):  # the backend goes away a moment after it is told to
            with psycopg.connect(postgres_state, autocommit=True) as admin:
                if not admin.execute("SELECT 1 FROM pg_locks WHERE locktype = 'advisory'").fetchall():
                    break
            time.sleep(0.05)
        with open_ledger(tmp_path) as other, other.run_lock(KEY):  # another host can take the send over now
            with pytest.raises(LockLostError, match="run lock of the sms send 'spring' 2026-03-02 was lost"):
                ledger.mark_sending(KEY, ["b", "c"])
            assert ledger.counts(KEY) == {"sending": 1, "pending": 2}, "nothing claimed after the loss"
            assert other.recover_in_flight(KEY) == 1  # the other host takes a's request for lost: unknown
            # a's request was accepted after all: the outcome is recorded, so the row is not re-sent as unknown
            assert ledger.mark_sent(KEY, [("a", "m-a")]) == 1
            assert other.reopen_unknown(KEY) == 0
            assert other.counts(KEY) == {"sent": 1, "pending": 2}


def test_opening_a_ledger_that_exists_waits_for_no_writer(postgres_state, tmp_path):
    # CREATE INDEX IF NOT EXISTS takes a SHARE lock on `sends` even when the index exists: a host opening the
    # ledger waited for every open write, and every other claim queued behind it
    import psycopg

    with open_ledger(tmp_path) as ledger:
        ledger.seed(KEY, ["a", "b"])
    with psycopg.connect(postgres_state) as writer:  # a long claim transaction in progress on another host
        writer.execute("UPDATE sends SET attempts = attempts WHERE customer_id = 'a'")
        with psycopg.connect(postgres_state, autocommit=True) as admin:
            admin.execute("ALTER DATABASE " + admin.info.dbname + " SET lock_timeout = '2s'")
        from tasks.state.db import close_pools

        close_pools()  # new connections, with the lock_timeout
        with open_ledger(tmp_path) as second:  # raised LockNotAvailable after 2 s before the fix
            assert second.counts(KEY) == {"pending": 2}
        writer.rollback()


def test_a_failed_commit_is_rolled_back_and_the_database_stays_usable(tmp_path):
    # a COMMIT that fails (here a deferred foreign key; in production a full disk or an I/O error on the WAL)
    # left the transaction open holding the write lock: every later transaction failed, other processes waited
    from tasks.state.db import SqliteDatabase

    db = SqliteDatabase(tmp_path / "db.sqlite3")
    with db.transaction() as tx:
        tx.script("CREATE TABLE a (id INTEGER PRIMARY KEY); "
                  "CREATE TABLE b (x INTEGER REFERENCES a (id) DEFERRABLE INITIALLY DEFERRED)")
    db._conn.execute("PRAGMA foreign_keys = ON")
    with pytest.raises(sqlite3.IntegrityError), db.transaction() as tx:
        tx.execute("INSERT INTO b VALUES (1)")
    with db.transaction() as tx:
        assert tx.rows("SELECT COUNT(*) FROM b") == [(0,)]
    other = sqlite3.connect(tmp_path / "db.sqlite3", timeout=1)
    other.execute("BEGIN IMMEDIATE")  # "database is locked" before the fix
    other.rollback()
    other.close()
    db.close()


def test_rows_are_read_a_page_at_a_time_in_customer_id_order(ledger):
    # exports read the send this way: a million recipients never sit in memory as dicts at once
    ledger.seed(KEY, [f"c{n:02d}" for n in range(25)])
    ledger.seed(SendKey("other", KEY.date, KEY.channel), ["c00", "zz"])
    pages = list(ledger.row_pages(KEY, page_rows=10))
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [r["customer_id"] for p in pages for r in p] == [f"c{n:02d}" for n in range(25)]
    assert [len(p) for p in ledger.row_pages(KEY, page_rows=5)] == [5] * 5
    assert list(ledger.row_pages(SendKey("none", KEY.date, KEY.channel))) == []


def test_claims_and_outcomes_are_set_based_and_conditional(ledger):
    ledger.seed(KEY, ["a", "b", "c", "d"])
    assert sorted(ledger.mark_sending(KEY, ["a", "b", "c"])) == ["a", "b", "c"]
    assert ledger.mark_sending(KEY, ["a", "b", "d"]) == ["d"], "a claimed row is never claimed twice"
    ledger.mark_sent(KEY, [("a", "m-a"), ("b", "m-b")])
    rows = {r["customer_id"]: r for r in ledger.rows(KEY)}
    assert (rows["a"]["provider_message_id"], rows["b"]["provider_message_id"]) == ("m-a", "m-b")
    assert ledger.counts(KEY) == {"sent": 2, "sending": 2}
    assert [p.customer_id for p in ledger.pending_among(KEY, ["a", "c", "zz"])] == []


def test_two_runs_starting_with_different_shard_counts_cannot_both_go_on(ledger, tmp_path):
    # the count was only recorded with the first seed batch: two hosts (an uneven config roll-out) both passed
    # the check, and one recovered the other's live rows as unknown
    with open_ledger(tmp_path) as other:
        assert ledger.seeding(KEY, Shard(0, 2)) is None
        with pytest.raises(ConfigError, match=r"was started with shards = 2; keep .* = 2 until it is finished"):
            other.seeding(KEY, Shard(0, 4))
        assert other.seeding(KEY, Shard(1, 2)) is None


def test_statistics_are_gathered_when_a_send_is_seeded_in_small_batches(postgres_state, tmp_path):
    # a shard's seed calls are small (10,000-row source batches split over the shards): ANALYZE only ran for a
    # call of 1,000 rows or more, so with 11 shards or more the planner never had statistics for the send, and
    # every claim scanned the send's rows by state (822 ms a batch at 1M rows, 19 ms with statistics)
    import psycopg

    with open_ledger(tmp_path) as ledger:
        for batch in range(12):
            ledger.seed(KEY, [f"c{batch}-{n}" for n in range(100)], shard=batch % 11)
    with psycopg.connect(postgres_state) as conn:
        (tuples,) = conn.execute("SELECT reltuples FROM pg_class WHERE relname = 'sends'").fetchone()
    assert tuples >= 1000


def test_seeding_is_recorded_per_shard_and_shards_cannot_change_mid_send(ledger):
    assert ledger.seeding(KEY, Shard(0, 2)) is None
    mark = SeedMark("customers.parquet@123", 1, 2, complete=False)
    assert ledger.seed(KEY, ["a", "c"], shard=0, mark=mark, shards=2) == 2
    assert ledger.seeding(KEY, Shard(0, 2)) == mark
    ledger.finish_seeding(KEY, Shard(0, 2), SeedMark("customers.parquet@123", 1, 2, complete=True))
    assert ledger.seeding(KEY, Shard(0, 2)).complete
    assert ledger.seeding(KEY, Shard(1, 2)) is None
    with pytest.raises(ConfigError, match="shards = 2"):
        ledger.seeding(KEY, Shard(0, 3))
    ledger.seed(KEY, ["b"], shard=1)
    ledger.mark_sending(KEY, ["a", "b"])
    assert ledger.recover_in_flight(KEY, shard=1) == 1, "a shard recovers only its own rows"
    assert ledger.counts(KEY, shard=0) == {"sending": 1, "pending": 1}


def test_a_version_1_sqlite_ledger_is_migrated_with_its_rows(tmp_path):
    path = tmp_path / "ledger" / "sms.sqlite3"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE sends (campaign TEXT NOT NULL, date TEXT NOT NULL, channel TEXT NOT NULL, customer_id TEXT "
        "NOT NULL, state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'unknown')), "
        "attempts INTEGER NOT NULL DEFAULT 0, unknown_resends INTEGER NOT NULL DEFAULT 0, reason TEXT, "
        "provider_message_id TEXT, next_attempt_at REAL, created_at REAL NOT NULL, updated_at REAL NOT NULL, "
        "PRIMARY KEY (campaign, date, channel, customer_id)) WITHOUT ROWID"
    )
    conn.execute("INSERT INTO sends VALUES ('spring', '2026-03-02', 'sms', 'a', 'sent', 1, 0, NULL, 'SM1', NULL, "
                 "1.0, 2.0)")
    conn.commit()
    conn.close()
    with SendLedger(path) as ledger:
        rows = ledger.rows(KEY)
        assert [(r["customer_id"], r["state"], r["provider_message_id"], r["shard"]) for r in rows] == [
            ("a", "sent", "SM1", 0)]
        assert ledger.seed(KEY, ["a", "b"]) == 1


def test_many_rows_commit_fast_enough_for_a_big_send(ledger):
    ids = [f"C{i:06d}" for i in range(20_000)]
    ledger.seed(KEY, ids)
    for cid in ids[:2000]:  # one commit per state change, as the sender does
        ledger.mark_sending(KEY, [cid])
        ledger.mark_sent(KEY, [(cid, None)])
    assert ledger.counts(KEY) == {"sent": 2000, "pending": 18_000}


def test_skipped_states_holds_and_recent_messages_for_the_frequency_cap(ledger):
    ledger.seed(KEY, ["a", "b", "c", "d"])
    assert ledger.mark_skipped(KEY, ["a"], "suppressed", "on [campaign] suppression_list") == ["a"]
    assert ledger.hold(KEY, ["b", "a"], "quiet hours 21:00-08:00 in America/New_York", 5000.0) == ["b"]
    ledger.mark_sending(KEY, ["c", "d"])
    assert ledger.mark_skipped(KEY, ["c"], "suppressed", "twilio: HTTP 400 code 21610") == ["c"]  # from sending
    ledger.mark_sent(KEY, [("d", "SM1")])
    rows = {r["customer_id"]: r for r in ledger.rows(KEY)}
    assert (rows["a"]["state"], rows["b"]["state"], rows["c"]["state"]) == ("suppressed", "pending", "suppressed")
    assert rows["b"]["next_attempt_at"] == 5000.0 and "quiet hours" in rows["b"]["reason"]
    with pytest.raises(ValueError):
        ledger.mark_skipped(KEY, ["b"], "failed", "not a skipped state")
    later = SendKey("summer", "2026-03-09", "sms")
    ledger.seed(later, ["d", "e"])
    # d had one message in another send; the send's own rows and skipped rows do not count
    assert ledger.recent_messages(later, ["d", "e", "a", "c"], since=0.0) == {"d": 1}
    assert ledger.recent_messages(KEY, ["d"], since=0.0) == {}
    assert ledger.recent_messages(later, ["d"], since=time.time() + 60) == {}
    email = SendKey("summer", "2026-03-09", "email")
    assert ledger.recent_messages(email, ["d"], since=0.0) == {}  # another channel


def test_the_local_postgres_is_reachable_only_through_its_owner_only_folder(pg_server):
    # it listened on 127.0.0.1 with trust authentication: any local user could connect as superuser and read
    # the ledger and the suppressions (tested as `nobody`)
    import os
    import socket as sockets
    import stat

    with sockets.socket() as tcp:
        assert tcp.connect_ex(("127.0.0.1", pg_server.port)) != 0, "no TCP port"
    mode = os.stat(pg_server.data_dir).st_mode
    assert stat.S_IMODE(mode) == 0o700
    assert (pg_server.data_dir / f".s.PGSQL.{pg_server.port}").is_socket()
    wait_ready(pg_server.dsn, timeout=5)  # the DSN reaches it through the socket


def test_two_sends_claiming_one_customer_at_once_cannot_both_pass_the_cap(ledger, tmp_path):
    # the cap was counted by the screen a moment before the claim, without a lock: two campaigns claiming the
    # same customers at the same moment both counted 0 and both sent (1/7d became 2 messages)
    import threading

    from tasks.channels.screen import ClaimCap

    spring, summer = KEY, SendKey("summer", KEY.date, KEY.channel)
    ids = [f"c{n:03d}" for n in range(200)]
    for key in (spring, summer):
        ledger.seed(key, ids)
    cap = ClaimCap(1, 0.0, "{count} message(s) on sms within frequency_cap 1/7d")
    claimed: dict[SendKey, list[str]] = {spring: [], summer: []}
    capped: dict[SendKey, list[str]] = {spring: [], summer: []}
    start = threading.Barrier(2)

    def claim(key: SendKey, order: list[str]) -> None:
        with open_ledger(tmp_path) as own:
            start.wait()
            for n in range(0, len(order), 20):
                got, over = own.claim(key, order[n:n + 20], cap)
                claimed[key] += got
                capped[key] += over

    threads = [threading.Thread(target=claim, args=(spring, ids)),
               threading.Thread(target=claim, args=(summer, ids[::-1]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed[spring] + claimed[summer]) == ids, "each customer claimed by exactly one send"
    assert sorted(capped[spring] + capped[summer]) == ids
    key = spring if capped[spring] else summer
    row = {r["customer_id"]: r for r in ledger.rows(key)}[capped[key][0]]
    assert (row["state"], row["reason"]) == ("capped", "1 message(s) on sms within frequency_cap 1/7d")
    # without a cap, claim is mark_sending
    third = SendKey("autumn", KEY.date, KEY.channel)
    ledger.seed(third, ["x"])
    assert ledger.claim(third, ["x"]) == (["x"], [])


def test_a_mistyped_dsn_never_shows_its_password():
    # libpq repeats a connection string it cannot parse, password included: that went to check-config's
    # traceback, the cron log and runs.jsonl (and the pool's workers logged it for 15 s of retries)
    from tasks.errors import StateBackendError
    from tasks.state.db import PostgresDatabase, postgres_pool

    dsn = "postgresql//tasks:S3cretPw@db/state"
    for attempt in (lambda: PostgresDatabase(dsn).connect(), lambda: postgres_pool(dsn)):
        with pytest.raises(StateBackendError) as caught:
            attempt()
        assert "S3cretPw" not in str(caught.value) and "not a valid libpq connection string" in str(caught.value)
