"""The channel token bucket: never more than burst + rate x t in any window, from many threads."""

from __future__ import annotations

import threading
import time

import pytest

from tasks.channels.limiter import ChannelLimiter
from tasks.errors import ConfigError
from tests.fakes.timing import max_in_window


def _hammer(limiter: ChannelLimiter, total: int, threads: int = 8) -> list[float]:
    stamps: list[float] = []
    lock = threading.Lock()
    left = [total]

    def work() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sorted(stamps)


@pytest.mark.parametrize(("rate", "burst"), [(20.0, 10), (40.0, 5)])
def test_token_bucket_bound_holds_across_threads(rate, burst):
    with ChannelLimiter(rate, burst, name="test") as limiter:
        total = burst + int(rate * 1.5)
        t0 = time.monotonic()
        stamps = _hammer(limiter, total)
    # the burst goes at once, then the refill rate: 1.5 s of refills at least
    assert stamps[-1] - t0 >= 1.5 * 0.9
    # a fixed-window limiter (`ratelimit`) lets 2x its limit through across a window edge
    assert max_in_window(stamps, 1.0) <= burst + rate
    assert max_in_window(stamps, 0.5) <= burst + rate * 0.5 + 1


def test_fractional_rate_and_bad_values():
    with ChannelLimiter(2.5, 1) as limiter:
        t0 = time.monotonic()
        for _ in range(3):
            limiter.acquire()
        assert time.monotonic() - t0 >= 2 * 0.4 * 0.9  # 0.4 s apart after the first
    with pytest.raises(ConfigError):
        ChannelLimiter(0, 5)
    with pytest.raises(ConfigError):
        ChannelLimiter(5, 0)
