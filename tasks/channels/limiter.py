"""A token bucket per channel (pyrate-limiter's TokenBucket), shared by the sender's threads.

`rate` requests per second on average, at most `burst` at once from a full bucket: over any
window of t seconds at most `burst + rate * t` requests pass. `ratelimit` (the original
design) is a fixed window that lets twice its limit through across a window edge and has
no burst (FACTS.md), so it is not used. The bucket lives in this process: the three
channels run in separate Luigi workers, each with its own bucket and its own provider
limit. Reads no luigi.cfg section: the caller passes rate and burst.
"""

from __future__ import annotations

import math

from pyrate_limiter import Duration, Limiter, Rate, StateBucket, TokenBucket

from tasks.errors import ConfigError

# Rates are kept in "per 1000 s" so fractional rates (0.5 rps) are exact integers.
_SCALE = 1000


class ChannelLimiter:
    """Blocking token bucket: `acquire()` waits until a request may go out; safe from many threads."""

    def __init__(self, rate: float, burst: int, name: str = "channel"):
        if not (rate > 0 and math.isfinite(rate)):
            raise ConfigError(f"rate limit of {name} must be a positive number of requests per second, got {rate}")
        if burst < 1:
            raise ConfigError(f"burst of {name} must be at least 1, got {burst}")
        self.rate = float(rate)
        self.burst = int(burst)
        self.name = name
        limit = Rate(round(rate * _SCALE), Duration.SECOND * _SCALE, burst=self.burst)
        self._limiter = Limiter(StateBucket([limit], algorithm=TokenBucket()), buffer_ms=5)

    def acquire(self) -> None:
        """Take one token, sleeping as long as needed (never fails: weight 1 always fits a burst >= 1)."""
        if not self._limiter.try_acquire(self.name, weight=1, blocking=True):
            raise RuntimeError(f"limiter {self.name} refused a request it should admit")  # pragma: no cover

    def close(self) -> None:
        self._limiter.close()

    def __enter__(self) -> ChannelLimiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChannelLimiter({self.name}: {self.rate:g}/s, burst {self.burst})"
