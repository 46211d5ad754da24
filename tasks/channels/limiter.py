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
across hosts; the clock is then the database's, so hosts' clocks need not agree. Or pass the
`store` itself (tasks/state/buckets.py): the state backend chooses it for a campaign send.

pyrate-limiter's own PostgresBucket was not used: it is a sliding-window log (a row per
request, `LOCK TABLE ... NOWAIT` that fails fast under contention), not the token bucket every
other channel uses, so "burst" would mean something else on Postgres. A token bucket's state
is one number, so there is nothing to leak and no background leak thread is started. Reads
no luigi.cfg section: the caller passes rate, burst and path or DSN.
"""

from __future__ import annotations

import math
from pathlib import Path

from pyrate_limiter import Duration, Limiter, Rate, StateBucket, TokenBucket
from pyrate_limiter.limiter import SingleBucketFactory

from tasks.errors import ConfigError
from tasks.state.buckets import PostgresStateStore, SharedStore, SqliteStateStore

__all__ = ["ChannelLimiter", "PostgresStateStore", "SqliteStateStore"]

# Rates are kept in "per 1000 s" so fractional rates (0.5 rps) are exact integers.
_SCALE = 1000


class ChannelLimiter:
    """Blocking token bucket: `acquire()` waits until a request may go out; safe from many threads
    (and, with `state_path`, from many processes)."""

    def __init__(self, rate: float, burst: int, name: str = "channel", state_path: Path | None = None,
                 dsn: str | None = None, store: SharedStore | None = None) -> None:
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
        limit = Rate(round(rate * _SCALE), Duration.SECOND * _SCALE, burst=self.burst)
        if store is None and dsn is not None:
            store = PostgresStateStore(dsn, name)
        elif store is None and state_path is not None:
            store = SqliteStateStore(state_path, name)
        self.store = store
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
        where = f", {self.store.where}" if self.store is not None else ""
        return f"ChannelLimiter({self.name}: {self.rate:g}/s, burst {self.burst}{where})"
