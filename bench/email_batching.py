"""E-mail batching: recipients per second with SendGrid batches against one recipient per request.

Both sides go through the real sender (send_campaign: token bucket, ledger) and
SendGridClient to the fake SendGrid (in this process, 100 ms latency, spec validation off)
at the same request rate, SendGrid's default 10 requests/s (burst 1, so the rate and not
the bucket decides): batched with `batch_size` 1000 personalizations per request, and with
`batch_size` 1. Each side runs in a child process; its peak RSS is its own
(bench.common.PeakRss). Smoke mode: 300 recipients in batches of 100 against 5 single
sends, one run.

    python -m bench.email_batching [--smoke]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import common

NAME = "email_batching"
RATE, BURST, LATENCY, CONCURRENCY = 10.0, 1, 0.1, 4


@dataclass(frozen=True)
class Sizes:
    batched: tuple[int, int]  # batch size, recipients
    single: tuple[int, int]
    runs: int


FULL = Sizes(batched=(1000, 40_000), single=(1, 50), runs=3)  # 40 requests (about 4 s); 50 (about 5 s)
SMOKE = Sizes(batched=(100, 300), single=(1, 5), runs=1)


def child(argv: list[str]) -> None:
    base_url, batch_size, count = argv[0], int(argv[1]), int(argv[2])
    from tasks.channels.http import HttpTransport
    from tasks.channels.ledger import SendKey, SendLedger
    from tasks.channels.limiter import ChannelLimiter
    from tasks.channels.sender import Recipient, SendPolicy, send_campaign
    from tasks.channels.sendgrid import SendGridClient
    from tests.fakes.providers import FakeProvider

    headers = {"Authorization": f"Bearer {FakeProvider.env()['SENDGRID_API_KEY']}"}
    client = SendGridClient(HttpTransport("sendgrid", base_url, connect_timeout=5, read_timeout=60, headers=headers),
                            "campaigns@example.com", batch_size=batch_size)
    recipients = [Recipient(f"C{i:07d}", f"user{i}@example.com", {}) for i in range(count)]
    with tempfile.TemporaryDirectory() as tmp, ChannelLimiter(RATE, BURST, "email") as limiter, \
            SendLedger(Path(tmp) / "email.sqlite3") as ledger:
        result = send_campaign(SendKey("bench", "2026-01-01", "email"), recipients,
                               lambda r: {"subject": "Hello", "body": f"Hello {r.customer_id}"}, client, limiter,
                               ledger, SendPolicy(concurrency=CONCURRENCY, max_attempts=1, retry_delay=1.0))
    client.close()
    common.child_report({"sent": result.counts["sent"], "seconds": result.duration_s, "requests": result.requests})


def _measure(batch_size: int, count: int, env: dict[str, str]) -> dict:
    from tests.fakes.providers import FakeProvider

    with FakeProvider(rate=RATE, burst=BURST + 2, latency=LATENCY, validate=False) as fake:
        report = common.run_child("bench.email_batching", [fake.base_url, str(batch_size), str(count)], env)
        time.sleep(0.1)
        report["accepted"] = fake.counters["accepted_messages"]
        report["http_429"] = fake.counters["throttled"]
    if report["accepted"] != count:
        raise RuntimeError(f"batch size {batch_size}: the fake accepted {report['accepted']} of {count}")
    return report


def main() -> list[dict]:
    sizes = common.pick(FULL, SMOKE)
    env = common.private_env(NAME)
    batched, single = [], []
    for _ in range(sizes.runs):
        batched.append(_measure(*sizes.batched, env))
        single.append(_measure(*sizes.single, env))
    single_rates = [r["sent"] / r["seconds"] for r in single]
    batched_rates = [r["sent"] / r["seconds"] for r in batched]
    entries = [
        common.entry(f"{NAME}.batched_recipients_per_s", values=batched_rates, unit="recipients/s",
                     baseline=statistics.median(single_rates), digits=1,
                     peak_rss_mb=max(r["peak_rss_mb"] for r in batched), batch_size=sizes.batched[0],
                     recipients=sizes.batched[1], request_rate=RATE,
                     achieved_request_rate=round(statistics.median(r["requests"] / r["seconds"] for r in batched), 2),
                     http_429=sum(r["http_429"] for r in batched)),
        common.entry(f"{NAME}.single_recipients_per_s", values=single_rates, unit="recipients/s", baseline=RATE,
                     digits=2, peak_rss_mb=max(r["peak_rss_mb"] for r in single), batch_size=1,
                     recipients=sizes.single[1], request_rate=RATE, http_429=sum(r["http_429"] for r in single)),
    ]
    return common.publish(entries)


if __name__ == "__main__":
    common.main_or_child(sys.argv[1:], main, child, "bench.email_batching")
