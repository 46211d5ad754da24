"""Resume after a crash: a 100,000-recipient outbox e-mail campaign SIGKILLed at about 50%.

Setup (not timed): 100,000 customers, each with an e-mail address, loaded by a real
LoadSegments run into a private var dir (bench/out/campaign_resume/). The send is the real
`luigi --module tasks.campaign.tasks SendEmailCampaign` subprocess, provider `outbox`, token
bucket 5000/s burst 500 (high enough that our own CPU, not the limit, sets the pace).

Per run, from an empty ledger and outbox:
- uninterrupted: one run to the end; the remaining-half time is the process's exit minus
  the `queued_at` of the k-th outbox line, k = the count the crash run reached;
- crash: a run SIGKILLed once the outbox holds >= 50% of the messages (k lines), then a
  restart timed from spawn to exit (interpreter start, Luigi, ledger recovery included).
Figures: restart time / uninterrupted remaining time (goal <= 1.1); duplicates in the
outbox (send ids seen twice; must be 0); recipients left `unknown` by the kill (in flight,
never re-sent by default); the restarted `luigi` process's own peak RSS (bench.common.PeakRss
wraps that very command; the run to be killed is started bare, so SIGKILL hits luigi itself).
Smoke mode: 1,000 recipients at 500/s burst 50 (the limit, not our CPU, sets the pace, so
the kill still lands mid-send), one run.

    python -m bench.campaign_resume [--smoke]
"""

from __future__ import annotations

import collections
import csv
import json
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import common

NAME = "campaign_resume"
CONCURRENCY = 8
DAY = "2026-01-15"
GOAL = 1.1


@dataclass(frozen=True)
class Sizes:
    recipients: int
    rate: int
    burst: int
    runs: int


FULL = Sizes(recipients=100_000, rate=5000, burst=500, runs=2)
SMOKE = Sizes(recipients=1_000, rate=500, burst=50, runs=1)


def _csv_path(sizes: Sizes) -> Path:
    return common.out_dir() / NAME / f"customers_{sizes.recipients}.csv"


def _env(sizes: Sizes) -> dict[str, str]:
    return common.private_env(NAME, {
        "segments": {"input_path": _csv_path(sizes)},
        "email_campaign": {"provider": "outbox", "rate": sizes.rate, "burst": sizes.burst,
                           "concurrency": CONCURRENCY},
    })


def _prepare(env: dict[str, str], sizes: Sizes) -> Path:
    """Customer CSV + LoadSegments (once per size); returns the var dir."""
    var = Path(env["TASKS_VAR_DIR"])
    csv_path = _csv_path(sizes)
    if not csv_path.exists():
        tmp = csv_path.with_suffix(".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(["customer_id", "segment", "email", "phone", "device_token"])
            segments = ("premium", "regular", "new")
            out.writerows([f"C{i:07d}", segments[i % 3], f"user{i}@example.com", "", ""]
                          for i in range(sizes.recipients))
        tmp.replace(csv_path)
    summary = var / "segments" / DAY / "summary.json"
    if summary.exists() and json.loads(summary.read_text()).get("rows_read") != sizes.recipients:
        shutil.rmtree(summary.parent)  # loaded from a CSV of another size
    if not summary.exists():
        common.run_measured([common.PYTHON, "-m", "luigi", "--module", "tasks.campaign.tasks", "LoadSegments",
                             "--date", DAY, "--local-scheduler"], env).check()
    return var


def _send(env: dict[str, str], campaign: str, log, peak: common.PeakRss | None = None) -> subprocess.Popen:
    """The send as a `luigi` process; with `peak`, wrapped to record that process's own peak RSS."""
    cmd = [common.PYTHON, "-m", "luigi", "--module", "tasks.campaign.tasks", "SendEmailCampaign", "--date", DAY,
           "--campaign", campaign, "--local-scheduler"]
    return subprocess.Popen(peak.wrap(cmd) if peak else cmd, cwd=common.REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def _outbox(var: Path, campaign: str) -> Path:
    return var / "outbox" / "email" / f"{campaign}-{DAY}.jsonl"


def _lines(path: Path) -> list[dict]:
    out = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut by the kill
    return out


def _result(var: Path, campaign: str) -> dict:
    return json.loads((var / "campaigns" / DAY / campaign / "email-all.json").read_text())


def _clean(var: Path) -> None:
    for sub in ("ledger", "outbox", "campaigns"):
        shutil.rmtree(var / sub, ignore_errors=True)


def _one_run(env: dict[str, str], var: Path, n: int, log, recipients: int) -> dict:
    # crash run: kill at >= 50% of the messages, then restart
    _clean(var)
    campaign = f"crash{n}"
    path = _outbox(var, campaign)
    proc = _send(env, campaign, log)  # bare: the SIGKILL below must hit the luigi process itself
    seen, offset = 0, 0
    deadline = time.monotonic() + 300
    while seen < recipients // 2:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the send ended or stalled before reaching 50%")
        time.sleep(0.02)
        if path.exists():
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            seen += chunk.count(b"\n")
            offset += len(chunk)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(_lines(path))
    started = time.perf_counter()
    peak = common.PeakRss()
    restart = _send(env, campaign, log, peak)
    if restart.wait(timeout=600) != 0:
        peak.discard()
        raise RuntimeError(f"the restarted send failed; see {common.out_dir() / NAME / 'runs.log'}")
    restart_s = time.perf_counter() - started
    restart_rss = peak.mb()
    lines = _lines(path)
    dupes = sum(c - 1 for c in collections.Counter(m["send_id"] for m in lines).values() if c > 1)
    crash_result = _result(var, campaign)

    # uninterrupted run of the same campaign size
    _clean(var)
    campaign = f"full{n}"
    started_wall = time.time()
    peak = common.PeakRss()
    proc = _send(env, campaign, log, peak)
    if proc.wait(timeout=600) != 0:
        peak.discard()
        raise RuntimeError("the uninterrupted send failed")
    ended = time.time()
    full_rss = peak.mb()
    full = sorted(m["queued_at"] for m in _lines(_outbox(var, campaign)))
    remaining_s = ended - full[killed_at - 1]
    return {
        "restart_s": restart_s, "remaining_s": remaining_s, "full_s": ended - started_wall, "killed_at": killed_at,
        "duplicates": dupes, "unknown": crash_result["counts"]["unknown"], "sent": crash_result["counts"]["sent"],
        "full_rate": _result(var, campaign)["achieved_rate"], "restart_rss": restart_rss, "full_rss": full_rss,
    }


def main() -> list[dict]:
    sizes = common.pick(FULL, SMOKE)
    env = _env(sizes)
    var = _prepare(env, sizes)
    with open(common.out_dir() / NAME / "runs.log", "wb") as log:
        runs = [_one_run(env, var, n, log, sizes.recipients) for n in range(sizes.runs)]
    _clean(var)
    ratios = [r["restart_s"] / r["remaining_s"] for r in runs]
    dupes = sum(r["duplicates"] for r in runs)
    baseline = statistics.median(r["remaining_s"] for r in runs)
    restart = [r["restart_s"] for r in runs]
    entries = [
        common.entry(f"{NAME}.restart_over_remaining_half", values=restart, unit="s", baseline=baseline,
                     goal=f"ratio <= {GOAL}", goal_met=statistics.median(restart) / baseline <= GOAL,
                     peak_rss_mb=max(r["restart_rss"] for r in runs),
                     uninterrupted_peak_rss_mb=max(r["full_rss"] for r in runs),
                     ratio_per_run=[round(x, 3) for x in ratios], killed_at=[r["killed_at"] for r in runs],
                     unknown_after_kill=[r["unknown"] for r in runs], recipients=sizes.recipients, rate=sizes.rate,
                     burst=sizes.burst, concurrency=CONCURRENCY, uninterrupted_s=[round(r["full_s"], 2) for r in runs],
                     uninterrupted_msg_per_s=[r["full_rate"] for r in runs]),
        common.entry(f"{NAME}.duplicates", values=[r["duplicates"] for r in runs], unit="messages", baseline=None,
                     goal="0", goal_met=dupes == 0),
    ]
    return common.publish(entries)


if __name__ == "__main__":
    common.main_or_child(sys.argv[1:], main, None, "bench.campaign_resume")  # its children are luigi runs
