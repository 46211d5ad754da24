"""A million-recipient e-mail send: memory, throughput, time to the first request, no-op re-run, resume.

Setup (not timed): customers.parquet with 1,000,000 customers (every one with an e-mail
address) written straight in LoadSegments' schema, and a fake SendGrid (a real HTTP server
on loopback, `python -m tests.fakes.providers`, its own process, no rate limit, spec
validation off: 1,000-personalization bodies) . Each child runs the real streaming sender
(tasks.campaign.recipients.ParquetRecipients + send_campaign) on the SQLite ledger, batches of
1,000 recipients, token bucket 1000/s burst 100, concurrency 4: the provider is not the limit.
The compliance screen of every send is on (issue 14): the duplicate-address scan before the first
request, then per request two suppression-store queries (the check, and the re-check with the token
in hand) and one frequency-cap query (1/7d).

Figures, each against the goal of issue 13 (the baseline of its ratio):
- peak RSS of the whole send, from /usr/bin/time -v around the child (goal <= 400 MB);
- recipients per second from the first request to the last, from the provider's log, against
  SendGrid's seed ceiling of 10,000/s (10 requests/s x 1,000; goal >= 1.0);
- seconds from spawning the child to the provider's first request, per million recipients
  (goal <= 5 s);
- a no-op re-run of the finished send: spawn to exit of a child that finds nothing to send (goal <= 2 s;
  `send_call_s` is the send call alone, without the interpreter and imports);
- resume: a child SIGKILLed once the provider has half the messages, then a restart timed
  from spawn to exit, over the uninterrupted run's time from the same point to its end
  (goal <= 1.1); duplicates (recipients messaged twice) must be 0.
Smoke mode: 20,000 recipients.

    python -m bench.campaign_scale [--smoke]
"""

from __future__ import annotations

import collections
import datetime
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import common

NAME = "campaign_scale"
DAY = datetime.date(2026, 1, 20)
RATE, BURST, CONCURRENCY = 1000.0, 100, 4
CEILING = 10_000.0  # SendGrid at the seed's limit: 10 requests/s x 1,000 recipients


def _customers(count: int) -> Path:
    """customers.parquet of `count` customers in LoadSegments' schema (written once per size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.campaign.segments import CUSTOMERS_SCHEMA

    path = common.out_dir() / NAME / f"customers_{count}.parquet"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = [f"C{i:08d}" for i in range(count)]
    columns = {
        "customer_id": ids,
        "segment": [("premium", "regular", "new")[i % 3] for i in range(count)],
        "email": [f"user{i}@example.com" for i in range(count)],
    }
    arrays = [pa.array(columns.get(f.name, [None] * count), type=f.type) for f in CUSTOMERS_SCHEMA]
    pq.write_table(pa.Table.from_arrays(arrays, schema=CUSTOMERS_SCHEMA), path)
    return path


def child(args: list[str]) -> None:
    """One send: `--child <customers.parquet> <var dir> <fake base url>`; prints the result's figures."""
    customers, var_dir, base_url = Path(args[0]), Path(args[1]), args[2]
    from tasks.campaign import compliance
    from tasks.campaign.recipients import ParquetRecipients
    from tasks.channels.http import HttpTransport
    from tasks.channels.ledger import SendKey, SendLedger, ledger_path
    from tasks.channels.limiter import ChannelLimiter
    from tasks.channels.sender import SendPolicy, send_campaign
    from tasks.channels.sendgrid import SendGridClient
    from tasks.channels.suppressions import SuppressionStore, suppressions_path
    from tests.fakes.providers import SENDGRID_KEY

    key = SendKey("bench", DAY.isoformat(), "email")
    source = ParquetRecipients(customers, "email", "all", "bench", DAY)
    transport = HttpTransport("sendgrid", base_url, headers={"Authorization": f"Bearer {SENDGRID_KEY}"},
                              connect_timeout=5, read_timeout=60)
    client = SendGridClient(transport, "bench@example.com", "", 1000)
    started = time.perf_counter()
    with (
        ChannelLimiter(RATE, BURST, name="email") as limiter,
        SendLedger(ledger_path(var_dir, "email")) as ledger,
        SuppressionStore(suppressions_path(var_dir)) as store,
    ):
        screen = compliance.CampaignScreen(
            key, "sendgrid", store=store, ledger=ledger, cap=compliance.parse_frequency_cap("1/7d"),
            duplicates=lambda: compliance.send_duplicates(customers, "email", "all"))
        result = send_campaign(key, source, lambda r: {"subject": "Hello", "body": f"Hi {r.customer_id}"}, client,
                               limiter, ledger, SendPolicy(concurrency=CONCURRENCY, progress_interval=5.0,
                                                           log_interval=60.0), screen=screen)
    client.close()
    common.child_report({"seconds": time.perf_counter() - started, "counts": result.counts,
                         "sent_this_run": result.messages_sent_this_run})


def _report(done: common.Finished) -> dict:
    """The child's own figures (its last JSON line)."""
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def _fake(log: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.providers", "--log", str(log), "--no-validate"],
                            cwd=common.REPO, stdout=subprocess.PIPE, text=True)
    return proc, json.loads(proc.stdout.readline())["base_url"]


def _arrivals(log: Path) -> list[float]:
    """The provider's accept time of every message so far (complete lines)."""
    times = []
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                times.append(json.loads(line)["at"])
            except ValueError:
                continue
    return times


class _LineCounter:
    """Complete lines of a growing file, reading only what was appended since the last call."""

    def __init__(self, path: Path):
        self.path, self.offset, self.lines = path, 0, 0

    def count(self) -> int:
        if self.path.exists():
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
            end = chunk.rfind(b"\n") + 1
            self.lines += chunk.count(b"\n", 0, end)
            self.offset += end
        return self.lines


def _fresh(name: str) -> tuple[Path, Path]:
    base = common.out_dir() / NAME / name
    if base.exists():
        import shutil

        shutil.rmtree(base)
    (base / "var").mkdir(parents=True)
    return base / "var", base / "accepted.jsonl"


def main() -> None:
    count = common.pick(1_000_000, 20_000)
    customers = _customers(count)
    cmd = [sys.executable, "-m", "bench.campaign_scale", "--child", str(customers)]
    env = common.private_env(NAME)
    label = f"{count // 1000}k" if count < 1_000_000 else f"{count // 1_000_000}M"

    # 1. the uninterrupted send, then a no-op re-run of it
    var_dir, log = _fresh("full")
    fake, url = _fake(log)
    try:
        spawned = time.time()
        full = common.run_measured([*cmd, str(var_dir), url], env, timeout=3600).check()
        arrivals = sorted(_arrivals(log))
        noop = common.run_measured([*cmd, str(var_dir), url], env).check()
    finally:
        fake.terminate()
        fake.wait(10)
    assert len(arrivals) == count, f"the fake accepted {len(arrivals)} of {count}"
    first_request = arrivals[0] - spawned
    rate = count / max(arrivals[-1] - arrivals[0], 1e-9)
    half_at = arrivals[count // 2]
    remaining_half = spawned + full.seconds - half_at

    # 2. SIGKILL at half, then the restart
    var_dir, log = _fresh("resume")
    fake, url = _fake(log)
    try:
        victim = subprocess.Popen([*cmd, str(var_dir), url], cwd=common.REPO, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        lines = _LineCounter(log)
        while victim.poll() is None and lines.count() < count // 2:
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        restart = common.run_measured([*cmd, str(var_dir), url], env, timeout=3600).check()
        accepted = [json.loads(line)["to"] for line in log.read_text().splitlines() if line.strip().endswith("}")]
    finally:
        fake.terminate()
        fake.wait(10)
    duplicates = sum(n - 1 for n in collections.Counter(accepted).values() if n > 1)

    common.publish([
        common.entry(f"{NAME}.peak_rss_mb_{label}", values=[full.peak_rss_mb], unit="MB", baseline=400.0,
                     goal="<= 400 MB", goal_met=full.peak_rss_mb <= 400, peak_rss_mb=full.peak_rss_mb),
        common.entry(f"{NAME}.recipients_per_s_{label}", values=[rate], unit="recipients/s", baseline=CEILING,
                     goal=">= 10,000/s (ratio >= 1)", goal_met=rate >= CEILING, digits=1,
                     peak_rss_mb=full.peak_rss_mb),
        common.entry(f"{NAME}.first_request_s_per_million", values=[first_request * 1_000_000 / count],
                     unit="s", baseline=5.0, goal="<= 5 s per million", goal_met=first_request * 1e6 / count <= 5,
                     peak_rss_mb=full.peak_rss_mb),
        common.entry(f"{NAME}.noop_rerun_s_{label}", values=[noop.seconds], unit="s", baseline=2.0,
                     goal="<= 2 s", goal_met=noop.seconds <= 2.0, peak_rss_mb=noop.peak_rss_mb,
                     send_call_s=round(_report(noop)["seconds"], 3)),
        common.entry(f"{NAME}.restart_over_remaining_half", values=[restart.seconds / remaining_half], unit="x",
                     baseline=1.0, goal="<= 1.1", goal_met=restart.seconds / remaining_half <= 1.1,
                     restart_s=round(restart.seconds, 2), remaining_half_s=round(remaining_half, 2),
                     duplicates=duplicates, peak_rss_mb=restart.peak_rss_mb),
    ])
    if duplicates:
        raise RuntimeError(f"{duplicates} recipient(s) messaged twice after the restart")


if __name__ == "__main__":
    common.main_or_child(sys.argv[1:], main, child, "bench.campaign_scale")
