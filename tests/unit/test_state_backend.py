"""The state backend object: chosen once from [state], and SQLite and Postgres answer the same questions (which
database, whether it exists, which lock, which token bucket, where a result goes) by behaviour, on real files
and a real Postgres. Also the per-engine transactions the ledger relies on (bulk insert, per-row updates, key
locks, the catalog)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tasks import state
from tasks.channels.limiter import ChannelLimiter
from tasks.errors import ConfigError
from tasks.state.backend import PostgresBackend, SqliteBackend

SQL_PROBE = Path(__file__).parent / "sql_probe"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, luigi_cfg) -> state.StateBackend:
    if request.param == "postgres":
        request.getfixturevalue("postgres_state")
    return state.backend()


def test_the_backend_is_chosen_once_from_the_config(luigi_cfg, monkeypatch):
    first = state.backend()
    assert isinstance(first, SqliteBackend) and state.backend() is first  # one object per configuration
    luigi_cfg.set("state", "backend", "postgres")
    assert isinstance(state.backend(), PostgresBackend)
    monkeypatch.delenv("TASKS_STATE_DSN", raising=False)
    problems = state.backend().problems()
    assert [(section, key) for section, key, _ in problems] == [("environment", None)]
    assert "TASKS_STATE_DSN" in problems[0][2]
    with pytest.raises(ConfigError, match="TASKS_STATE_DSN"):
        state.backend().database("unused.sqlite3")


def test_a_reachable_backend_has_no_problems(backend):
    assert backend.problems() == []


def test_a_database_holds_what_was_written_and_existing_never_creates(backend, tmp_path):
    path = tmp_path / "ledger" / "x.sqlite3"
    before = backend.existing_database(path)
    if before is None:  # a file backend: nothing there yet, and asking created nothing
        assert not path.exists()
    else:
        before.close()
    db = backend.database(path)
    with db.transaction() as tx:
        tx.script("CREATE TABLE IF NOT EXISTS probe (id TEXT PRIMARY KEY, n INTEGER)")
        tx.execute("DELETE FROM probe")
        tx.execute("INSERT INTO probe (id, n) VALUES (:id, :n)", {"id": "a", "n": 1})
    db.close()
    again = backend.existing_database(path)
    assert again is not None
    with again.transaction() as tx:
        assert tx.rows("SELECT id, n FROM probe") == [("a", 1)]
    again.close()


def test_a_lock_is_exclusive_until_released(backend, tmp_path):
    with backend.try_lock("probe-lock", tmp_path) as held:
        assert held
        with backend.try_lock("probe-lock", tmp_path) as second:
            assert not second
        with backend.try_lock("other-lock", tmp_path) as other:
            assert other
    with backend.try_lock("probe-lock", tmp_path) as after:
        assert after


def test_processes_of_a_host_share_a_bucket_where_the_backend_keeps_it(backend, tmp_path):
    shared = tmp_path / "limiter" / "sms.sqlite3"
    stores = [backend.bucket_store("sms-probe", shared) for _ in range(2)]
    assert all(store is not None for store in stores)
    with ChannelLimiter(1.0, 2, name="sms-probe", store=stores[0]) as first, \
            ChannelLimiter(1.0, 2, name="sms-probe", store=stores[1]) as second:
        assert first.acquire(timeout=0) and second.acquire(timeout=0)  # the burst of one bucket
        assert not first.acquire(timeout=0) and not second.acquire(timeout=0)  # empty for both
        assert "shared through" in repr(first)


def test_without_a_shared_file_a_bucket_is_the_backends_choice(backend):
    store = backend.bucket_store("push-probe", None)
    if store is None:  # in this process only
        return
    with ChannelLimiter(1.0, 1, name="push-probe", store=store) as first, \
            ChannelLimiter(1.0, 1, name="push-probe", store=backend.bucket_store("push-probe", None)) as second:
        assert first.acquire(timeout=0) and not second.acquire(timeout=0)  # every host: one bucket


def test_a_result_target_records_reads_and_forgets_a_result(backend, tmp_path):
    path = tmp_path / "host1" / "campaigns" / "sms-all.json"
    shard = tmp_path / "host1" / "campaigns" / "sms-all.shard-1-of-2.json"
    target = backend.result_target(path, "sms/demo/2026-03-02/all")
    shard_target = backend.result_target(shard, "sms/demo/2026-03-02/all/shard-1-of-2")
    assert not target.exists() and target.read() is None
    target.write({"counts": {"sent": 3}})
    shard_target.write({"counts": {"sent": 1}})
    assert target.exists() and target.read() == {"counts": {"sent": 3}}
    assert json.loads(path.read_text()) == {"counts": {"sent": 3}}  # the file on this host, always
    assert target.path == str(path)
    path.unlink()
    shard.unlink()
    # the file is gone from this host: the result is still done where the backend keeps completion, or not
    assert target.exists() == (target.read() is not None)
    if target.exists():  # another host's view: the file is written back from the marker
        assert json.loads(target.local_file().read_text()) == {"counts": {"sent": 3}}
        assert target.unmark() == 2  # the send's mark and its shard's
    else:
        assert target.unmark() == 0
    assert not target.exists() and not shard_target.exists()


def test_transactions_bulk_insert_update_per_row_and_read_the_catalog(backend, tmp_path):
    db = backend.database(tmp_path / "tx.sqlite3")
    with db.transaction() as tx:
        tx.script("CREATE TABLE IF NOT EXISTS bulk (k TEXT NOT NULL, id TEXT PRIMARY KEY, v TEXT)")
        assert tx.table_columns("bulk") == ["k", "id", "v"]
        assert tx.table_columns("no_such_table") == []
        insert = db.sql(SQL_PROBE, "bulk_insert")  # each engine's own variant, as the ledger's statements
        assert tx.insert_each(insert, {"k": "key"}, "id", [f"i{n}" for n in range(500)]) == 500
        assert tx.insert_each(insert, {"k": "key"}, "id", ["i0", "new"]) == 1  # conflicts count 0
        update = db.sql(SQL_PROBE, "update_each")
        moved = tx.execute_each(update, {}, {"id": ["i1", "i2", "nope"], "v": ["x", "y", "z"]})
        assert moved == 2
        tx.lock_keys(["c1/sms", "c2/sms", "c1/sms"])  # repeated names, one order: no error, no deadlock
        assert dict(tx.rows("SELECT id, v FROM bulk WHERE v IS NOT NULL")) == {"i1": "x", "i2": "y"}
        assert tx.rows("SELECT count(*) FROM bulk WHERE k = 'key'") == [(501,)]
    db.close()


def test_key_locks_make_two_transactions_take_turns(backend, tmp_path):
    db = backend.database(tmp_path / "locks.sqlite3")
    order: list[str] = []
    entered = threading.Event()

    def first() -> None:
        with db.transaction() as tx:
            tx.lock_keys(["c1/sms"])
            entered.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    assert entered.wait(10)
    other = backend.database(tmp_path / "locks.sqlite3")
    with other.transaction() as tx:
        tx.lock_keys(["c1/sms"])
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]
    other.close()
    db.close()
