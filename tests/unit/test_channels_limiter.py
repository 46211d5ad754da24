"""The channel token bucket: never more than burst + rate x t in any window, from many threads."""

from __future__ import annotations

import multiprocessing
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


# ---------------------------------------------------------------- shared through SQLite (Slack's bucket) or Postgres


def test_acquire_with_a_timeout_gives_up_and_fractional_rates_stay_exact(tmp_path):
    with ChannelLimiter(0.5, 1, name="half", state_path=tmp_path / "bucket.sqlite") as limiter:
        t0 = time.monotonic()
        assert limiter.acquire(timeout=0) is True  # a full bucket: at once
        assert limiter.acquire(timeout=1.3) is False  # the next token is due at 2.0 s, not 1.0 s
        assert 1.2 <= time.monotonic() - t0 < 1.9
        assert limiter.acquire(timeout=2.0) is True
        assert 1.95 <= time.monotonic() - t0 < 2.6


def test_limiters_naming_the_same_file_and_name_share_one_bucket(tmp_path):
    path = tmp_path / "bucket.sqlite"
    with ChannelLimiter(1.0, 2, name="hook", state_path=path) as first, \
            ChannelLimiter(1.0, 2, name="hook", state_path=path) as second, \
            ChannelLimiter(1.0, 2, name="other", state_path=path) as other:
        assert first.acquire(timeout=0) and second.acquire(timeout=0)
        assert second.acquire(timeout=0) is False and first.acquire(timeout=0) is False  # burst spent
        assert other.acquire(timeout=0) is True  # another name, another bucket


def test_no_background_thread_is_left_running(tmp_path):
    before = set(threading.enumerate())
    with ChannelLimiter(5.0, 2, name="local") as local, \
            ChannelLimiter(5.0, 2, name="shared", state_path=tmp_path / "bucket.sqlite") as shared:
        for limiter in (local, shared):
            for _ in range(3):
                limiter.acquire()
        assert set(threading.enumerate()) == before


def _acquire_in_process(path, start, count, stamps, dsn=None) -> None:
    with ChannelLimiter(7.5, 3, name="hook", state_path=None if dsn else path, dsn=dsn) as limiter:
        start.wait(10)
        for _ in range(count):
            limiter.acquire()
            stamps.put(time.time())


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_shared_bucket_holds_burst_plus_rate_across_processes(tmp_path, request, store):
    dsn = request.getfixturevalue("pg_dsn") if store == "postgres" else None
    rate, burst, per_process = 7.5, 3, 5
    start, stamps = multiprocessing.Event(), multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_acquire_in_process,
                                     args=(tmp_path / "bucket.sqlite", start, per_process, stamps, dsn))
             for _ in range(3)]
    for p in procs:
        p.start()
    time.sleep(0.5)  # every process has built its limiter
    start.set()
    arrivals = sorted(stamps.get(timeout=30) for _ in range(3 * per_process))
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    # one shared bucket: 3 at once, then 7.5/s; three private buckets would let 9 through at once
    assert max_in_window(arrivals, 1.0) <= burst + rate
    assert max_in_window(arrivals, 0.1) <= burst + 1
    assert arrivals[-1] - arrivals[0] >= (3 * per_process - burst) / rate * 0.9


def test_postgres_limiters_naming_the_same_key_share_one_bucket(pg_dsn):
    with ChannelLimiter(1.0, 2, name="sms", dsn=pg_dsn) as first, ChannelLimiter(1.0, 2, name="sms", dsn=pg_dsn) as \
            second, ChannelLimiter(1.0, 2, name="push", dsn=pg_dsn) as other:
        assert first.acquire(timeout=0) and second.acquire(timeout=0)
        assert second.acquire(timeout=0) is False and first.acquire(timeout=0) is False  # burst spent
        assert other.acquire(timeout=0) is True
        assert "state database" in repr(first)
