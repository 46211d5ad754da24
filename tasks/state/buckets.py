"""Token-bucket state that several processes share: a row of a SQLite file (one host) or of the shared
Postgres database (every host), for pyrate-limiter's StateBucket (tasks/channels/limiter.py).

A token bucket's state is one number, so there is nothing to leak and no background leak thread.
The state backend (tasks.state.backend()) says which one a channel's limiter uses. Reads no
luigi.cfg section: the caller passes the path or DSN.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from pyrate_limiter import Rate
from pyrate_limiter.abstracts.algorithm import Decision, State, StateAlgorithm
from pyrate_limiter.abstracts.store import StateStore
from pyrate_limiter.clocks import WallClock

from tasks.files import private_file
from tasks.state.db import SCHEMA_LOCK, postgres_pool


class SqliteStateStore(StateStore):
    """pyrate-limiter state for one key, kept in a SQLite row so that processes share it.

    `check()` is atomic across processes: BEGIN IMMEDIATE takes SQLite's write lock before the
    state is read, and the new state is committed in the same transaction. A connection is
    opened per check, so a store built before Luigi forks is still safe in the child. The
    clock is the wall clock: a monotonic one means nothing across processes.
    """

    default_clock = WallClock()

    def __init__(self, path: Path, key: str) -> None:
        self.path = Path(path)
        self.key = key
        self.where = f"shared through {self.path.name}"
        private_file(self.path)  # created 0600 before SQLite opens it (SQLite would follow the umask)
        conn = self._connect()
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS bucket_state (key TEXT PRIMARY KEY, state TEXT NOT NULL)")
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def check(self, algorithm: StateAlgorithm, rates: list[Rate], now: int, weight: int) -> Decision:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            state = self._load(conn, algorithm, rates)
            new_state, decision = algorithm.step(rates, state, now, weight)
            if decision.allowed:
                conn.execute(
                    "INSERT OR REPLACE INTO bucket_state (key, state) VALUES (?, ?)",
                    (self.key, json.dumps(list(new_state))),
                )
            conn.execute("COMMIT")
            return decision
        finally:
            conn.close()

    def read(self, algorithm: StateAlgorithm, rates: list[Rate]) -> State:
        conn = self._connect()
        try:
            return self._load(conn, algorithm, rates)
        finally:
            conn.close()

    def reset(self) -> None:
        conn = self._connect()
        try:
            conn.execute("DELETE FROM bucket_state WHERE key = ?", (self.key,))
        finally:
            conn.close()

    def _load(self, conn: sqlite3.Connection, algorithm: StateAlgorithm, rates: list[Rate]) -> State:
        row = conn.execute("SELECT state FROM bucket_state WHERE key = ?", (self.key,)).fetchone()
        if row is None:
            return algorithm.initial(rates)
        stored = tuple(json.loads(row[0]))
        return stored if len(stored) == len(rates) else algorithm.initial(rates)


class PostgresStateStore(StateStore):
    """pyrate-limiter state for one key in a row of the shared Postgres database (every host, one bucket).

    `check()` locks the key's row (`SELECT ... FOR UPDATE`) and writes the new state in the same
    transaction. The clock is the database's (`clock_timestamp()`), read in that transaction and
    by the limiter's waits, so hosts with drifting clocks still share one bucket correctly.
    """

    def __init__(self, dsn: str, key: str) -> None:
        from pyrate_limiter.clocks import PostgresClock

        self.dsn = dsn
        self.key = key
        self.where = "shared through the state database"
        self.default_clock = PostgresClock(postgres_pool(dsn))
        with self._conn() as conn, conn.transaction():  # hosts starting at once: one CREATE at a time
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS bucket_state (key TEXT PRIMARY KEY, state TEXT NOT NULL)")

    def _conn(self) -> Any:
        return postgres_pool(self.dsn).connection()

    def check(self, algorithm: StateAlgorithm, rates: list[Rate], now: int, weight: int) -> Decision:
        with self._conn() as conn, conn.transaction():
            conn.execute("INSERT INTO bucket_state (key, state) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                         (self.key, json.dumps(list(algorithm.initial(rates)))))
            row = conn.execute(
                "SELECT state, (extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM bucket_state "
                "WHERE key = %s FOR UPDATE", (self.key,)).fetchone()
            stored = tuple(json.loads(row[0]))
            state = stored if len(stored) == len(rates) else algorithm.initial(rates)
            new_state, decision = algorithm.step(rates, state, int(row[1]), weight)
            if decision.allowed:
                conn.execute("UPDATE bucket_state SET state = %s WHERE key = %s",
                             (json.dumps(list(new_state)), self.key))
            return decision

    def read(self, algorithm: StateAlgorithm, rates: list[Rate]) -> State:
        with self._conn() as conn:
            row = conn.execute("SELECT state FROM bucket_state WHERE key = %s", (self.key,)).fetchone()
        if row is None:
            return algorithm.initial(rates)
        stored = tuple(json.loads(row[0]))
        return stored if len(stored) == len(rates) else algorithm.initial(rates)

    def reset(self) -> None:
        with self._conn() as conn:
            conn.execute("DELETE FROM bucket_state WHERE key = %s", (self.key,))


SharedStore = SqliteStateStore | PostgresStateStore
