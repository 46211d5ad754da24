"""A token bucket per channel (pyrate-limiter's TokenBucket): in this process, or shared through SQLite or Postgres.

`rate` requests per second on average, at most `burst` at once from a full bucket: over any
window of t seconds at most `burst + rate * t` requests pass. `ratelimit` (the original
design) is a fixed window that lets twice its limit through across a window edge and has
no burst (`limits(calls=10, period=1)` let 20 calls through in one sliding second in 14 of 15
runs with 8 threads, ratelimit 2.2.1), so it is not used.

By default the bucket lives in this process and is shared by its threads: the three campaign
channels run in separate Luigi workers, each with its own bucket and its own provider limit.
With `state_path` the bucket's state is a row of a SQLite file, so every process that names
the same file and `name` draws from one bucket (Slack alerts: Luigi forks a process per
task; the shards of one send on one host). With `dsn` it is a row in the shared Postgres
database, so the processes of every host draw from one bucket and one provider limit holds
across hosts; the clock is then the database's, so hosts' clocks need not agree.

pyrate-limiter's own PostgresBucket was not used: it is a sliding-window log (a row per
request, `LOCK TABLE ... NOWAIT` that fails fast under contention), not the token bucket every
other channel uses, so "burst" would mean something else on Postgres. A token bucket's state
is one number, so there is nothing to leak and no background leak thread is started. Reads
no luigi.cfg section: the caller passes rate, burst and path or DSN.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

from pyrate_limiter import Duration, Limiter, Rate, StateBucket, TokenBucket
from pyrate_limiter.abstracts.algorithm import Decision, State, StateAlgorithm
from pyrate_limiter.abstracts.store import StateStore
from pyrate_limiter.clocks import WallClock
from pyrate_limiter.limiter import SingleBucketFactory

from tasks.errors import ConfigError
from tasks.files import private_file
from tasks.state.db import SCHEMA_LOCK, postgres_pool

# Rates are kept in "per 1000 s" so fractional rates (0.5 rps) are exact integers.
_SCALE = 1000


class ChannelLimiter:
    """Blocking token bucket: `acquire()` waits until a request may go out; safe from many threads
    (and, with `state_path`, from many processes)."""

    def __init__(self, rate: float, burst: int, name: str = "channel", state_path: Path | None = None,
                 dsn: str | None = None):
        if not (rate > 0 and math.isfinite(rate)) or round(rate * _SCALE) < 1:
            raise ConfigError(
                f"rate limit of {name} must be a positive number of requests per second (at least "
                f"{1 / _SCALE:g}), got {rate}"
            )
        if burst < 1:
            raise ConfigError(f"burst of {name} must be at least 1, got {burst}")
        self.rate = float(rate)
        self.burst = int(burst)
        self.name = name
        self.state_path = state_path
        self.shared_db = dsn is not None
        limit = Rate(round(rate * _SCALE), Duration.SECOND * _SCALE, burst=self.burst)
        store: StateStore | None = None
        if dsn is not None:
            store = PostgresStateStore(dsn, name)
        elif state_path is not None:
            store = SqliteStateStore(state_path, name)
        bucket = StateBucket([limit], algorithm=TokenBucket(), store=store)
        self._limiter = Limiter(SingleBucketFactory(bucket, schedule_leak=False), buffer_ms=5)

    def acquire(self, timeout: float | None = None) -> bool:
        """Take one token, sleeping as long as needed; True once taken. With `timeout`, give up
        after that many seconds and return False (weight 1 always fits a burst >= 1)."""
        if self._limiter.try_acquire(self.name, weight=1, blocking=True,
                                     timeout=-1 if timeout is None else max(0.0, timeout)):
            return True
        if timeout is None:  # pragma: no cover - only a broken bucket refuses without a timeout
            raise RuntimeError(f"limiter {self.name} refused a request it should admit")
        return False

    def close(self) -> None:
        self._limiter.close()

    def __enter__(self) -> ChannelLimiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f", shared through {self.state_path.name}" if self.state_path is not None else ""
        where = ", shared through the state database" if self.shared_db else where
        return f"ChannelLimiter({self.name}: {self.rate:g}/s, burst {self.burst}{where})"


class SqliteStateStore(StateStore):
    """pyrate-limiter state for one key, kept in a SQLite row so that processes share it.

    `check()` is atomic across processes: BEGIN IMMEDIATE takes SQLite's write lock before the
    state is read, and the new state is committed in the same transaction. A connection is
    opened per check, so a store built before Luigi forks is still safe in the child. The
    clock is the wall clock: a monotonic one means nothing across processes.
    """

    default_clock = WallClock()

    def __init__(self, path: Path, key: str):
        self.path = Path(path)
        self.key = key
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

    def __init__(self, dsn: str, key: str):
        from pyrate_limiter.clocks import PostgresClock

        self.dsn = dsn
        self.key = key
        self.default_clock = PostgresClock(postgres_pool(dsn))
        with self._conn() as conn, conn.transaction():  # hosts starting at once: one CREATE at a time
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS bucket_state (key TEXT PRIMARY KEY, state TEXT NOT NULL)")

    def _conn(self):
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
