"""Campaign pace against the rate ceiling: how close the shared sender gets to `rate`, safely.

The fake Twilio (tests/fakes/providers.py, spec validation off: it is tested elsewhere and
would cost the harness CPU) runs in this process with 100 ms and then 300 ms latency and its
own token bucket at the configured rate (burst + 2 for arrival jitter). Each sender runs in a
child process:

- `sender`: tasks.channels.sender.send_campaign (token bucket 100/s burst 50, the SQLite
  ledger, retries) with concurrency = ceil(rate x latency x 1.5), 1,250 SMS (12 s ideal).
  Achieved rate = the steady rate the provider saw: requests per second after the first two
  seconds (the burst and the ramp-up while the first `concurrency` requests are in flight are
  left out; `ideal_over_actual` gives the whole run: (sent - burst) / rate over its duration).
  Goals: achieved/configured >= 0.97,
  the most requests in any sliding 1 s window (seen by the provider) <= rate + burst, no 429.
- `sequential`: what one writes first: send, then sleep 1/rate, one request at a time.
- `fixed_window`: the `ratelimit` package (`@sleep_and_retry @limits(calls=rate, period=1)`)
  around the same client, with the same concurrency; a 429 is counted, not retried.

Peak RSS is each child's own (bench.common.PeakRss). Smoke mode: 150 SMS (1 s at the
ceiling, the steady rate counted after 0.5 s), the sequential sender for about 1 s, one run each.

    python -m bench.campaign_pace [--smoke]
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import common

NAME = "campaign_pace"
RATE, BURST = 100.0, 50
LATENCIES = (0.1, 0.3)
GOAL = 0.97


@dataclass(frozen=True)
class Sizes:
    messages: int
    sender_runs: int
    startup: float  # seconds left out of the steady rate: the burst drains within about 1 s
    sequential_seconds: float  # the sequential sender is slow: send what it manages in about this long


FULL = Sizes(messages=1250, sender_runs=3, startup=2.0, sequential_seconds=8.0)  # (1250 - 50) / 100 = 12 s
SMOKE = Sizes(messages=150, sender_runs=1, startup=0.5, sequential_seconds=1.0)


def concurrency_for(latency: float) -> int:
    """Requests in flight needed so the limit, not latency, sets the pace (measured: x1.5 margin)."""
    return math.ceil(RATE * latency * 1.5)


def _client(base_url: str):
    from tasks.channels.http import HttpTransport
    from tasks.channels.twilio import TwilioClient
    from tests.fakes.providers import FakeProvider

    env = FakeProvider.env()
    transport = HttpTransport("twilio", base_url, connect_timeout=5, read_timeout=30,
                              auth=(env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"]))
    return TwilioClient(transport, env["TWILIO_ACCOUNT_SID"], env["TWILIO_FROM_NUMBER"])


def _phone(i: int) -> str:
    return f"+1212555{i:04d}"


def child(argv: list[str]) -> None:
    mode, base_url, count, concurrency = argv[0], argv[1], int(argv[2]), int(argv[3])
    client = _client(base_url)
    if mode == "sender":
        from tasks.channels.ledger import SendKey, SendLedger
        from tasks.channels.limiter import ChannelLimiter
        from tasks.channels.sender import Recipient, SendPolicy, send_campaign

        recipients = [Recipient(f"C{i:06d}", _phone(i), {}) for i in range(count)]
        with tempfile.TemporaryDirectory() as tmp, ChannelLimiter(RATE, BURST, "sms") as limiter, \
                SendLedger(Path(tmp) / "sms.sqlite3") as ledger:
            result = send_campaign(SendKey("bench", "2026-01-01", "sms"), recipients,
                                   lambda r: {"body": f"Hello {r.customer_id}"}, client, limiter, ledger,
                                   SendPolicy(concurrency=concurrency, max_attempts=1, retry_delay=1.0))
        client.close()
        common.child_report({"sent": result.counts["sent"], "seconds": result.duration_s,
                             "failed": result.counts["failed"], "unknown": result.counts["unknown"]})
        return
    from tasks.channels.base import Message
    from tasks.errors import RetriableApiError

    def send_one(i: int) -> bool:
        message = Message(f"C{i:06d}", _phone(i), f"bench/{i}", {"body": f"Hello C{i:06d}"})
        try:
            client.send([message])
            return True
        except RetriableApiError:
            return False

    started = time.perf_counter()
    if mode == "sequential":
        sent = 0
        for i in range(count):
            sent += send_one(i)
            time.sleep(1 / RATE)
    else:
        from ratelimit import limits, sleep_and_retry

        limited = sleep_and_retry(limits(calls=int(RATE), period=1)(send_one))
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            sent = sum(pool.map(limited, range(count)))
    seconds = time.perf_counter() - started
    client.close()
    common.child_report({"sent": sent, "seconds": seconds})


def _measure(mode: str, latency: float, count: int, concurrency: int, startup: float, env: dict[str, str]) -> dict:
    from tests.fakes.providers import FakeProvider

    with FakeProvider(rate=RATE, burst=BURST + 2, latency=latency, validate=False) as fake:
        report = common.run_child("bench.campaign_pace", [mode, fake.base_url, str(count), str(concurrency)], env)
        time.sleep(0.2)
        report["max_1s_window"] = fake.max_requests_in_window(1.0, "twilio")
        report["steady_rate"] = _steady_rate([t for t, _ in fake.request_times], startup)
        report["http_429"] = fake.counters["throttled"]
        report["accepted"] = fake.counters["accepted_messages"]
    return report


def _steady_rate(times: list[float], startup: float) -> float:
    """Requests per second the provider saw after the first `startup` seconds (the burst and ramp-up excluded)."""
    times = sorted(times)
    later = [t for t in times if t >= times[0] + startup]
    return (len(later) - 1) / (later[-1] - later[0]) if len(later) > 1 else 0.0


def main() -> list[dict]:
    sizes = common.pick(FULL, SMOKE)
    env = common.private_env(NAME)
    messages = sizes.messages
    entries = []
    bound = RATE + BURST
    for latency in LATENCIES:
        label = f"{int(latency * 1000)}ms"
        conc = concurrency_for(latency)
        runs = [_measure("sender", latency, messages, conc, sizes.startup, env) for _ in range(sizes.sender_runs)]
        steady = [r["steady_rate"] for r in runs]
        worst_window = max(r["max_1s_window"] for r in runs)
        throttled = sum(r["http_429"] for r in runs)
        met = statistics.median(steady) / RATE >= GOAL and worst_window <= bound and throttled == 0
        entries.append(common.entry(
            f"{NAME}.sender_{label}", values=steady, unit="msg/s", baseline=RATE,
            goal=f"achieved/configured >= {GOAL}, max 1 s window <= {bound:g}, 0 x 429", goal_met=met,
            peak_rss_mb=max(r["peak_rss_mb"] for r in runs), concurrency=conc, messages=messages,
            max_1s_window=worst_window, window_bound=bound, http_429=throttled,
            seconds=[round(r["seconds"], 2) for r in runs],
            ideal_over_actual=[round((messages - BURST) / RATE / r["seconds"], 3) for r in runs],
        ))
        interval = latency + 1 / RATE  # and at least two requests after the startup seconds
        seq_count = max(int(sizes.sequential_seconds / interval), int(sizes.startup / interval) + 3)
        for mode, count, c in (("sequential", seq_count, 1), ("fixed_window", messages, conc)):
            r = _measure(mode, latency, count, c, sizes.startup, env)
            entries.append(common.entry(
                f"{NAME}.{mode}_{label}", values=[r["steady_rate"]], unit="msg/s", baseline=RATE,
                peak_rss_mb=r["peak_rss_mb"], concurrency=c, messages=count, max_1s_window=r["max_1s_window"],
                window_bound=bound, http_429=r["http_429"], seconds=round(r["seconds"], 2),
            ))
    common.show(entries)
    for e in entries:
        print(f"  {e['name']}: max 1 s window {e['max_1s_window']} (bound {e['window_bound']:g}), "
              f"429s {e['http_429']}, concurrency {e['concurrency']}")
    common.save(entries)
    return entries


if __name__ == "__main__":
    common.main_or_child(sys.argv[1:], main, child, "bench.campaign_pace")
