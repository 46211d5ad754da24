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
never re-sent by default).

    python -m bench.campaign_resume
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
from pathlib import Path

from bench import common

NAME = "campaign_resume"
RECIPIENTS = 100_000
RATE, BURST, CONCURRENCY = 5000, 500, 8
DAY = "2026-01-15"
RUNS = 2
GOAL = 1.1


def _env() -> dict[str, str]:
    csv_path = common.OUT / NAME / "customers.csv"
    return common.private_env(NAME, {
        "segments": {"input_path": csv_path},
        "email_campaign": {"provider": "outbox", "rate": RATE, "burst": BURST, "concurrency": CONCURRENCY},
    })


def _prepare(env: dict[str, str]) -> Path:
    """Customer CSV + LoadSegments (once); returns the var dir."""
    var = Path(env["TASKS_VAR_DIR"])
    csv_path = common.OUT / NAME / "customers.csv"
    if not csv_path.exists():
        with open(csv_path, "w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(["customer_id", "segment", "email", "phone", "device_token"])
            segments = ("premium", "regular", "new")
            out.writerows([f"C{i:07d}", segments[i % 3], f"user{i}@example.com", "", ""] for i in range(RECIPIENTS))
    if not (var / "segments" / DAY / "summary.json").exists():
        subprocess.run([common.PYTHON, "-m", "luigi", "--module", "tasks.campaign.tasks", "LoadSegments", "--date", DAY,
                        "--local-scheduler"], cwd=common.REPO, env=env, check=True, capture_output=True)
    return var


def _send(env: dict[str, str], campaign: str, log) -> subprocess.Popen:
    cmd = [common.PYTHON, "-m", "luigi", "--module", "tasks.campaign.tasks", "SendEmailCampaign", "--date", DAY,
           "--campaign", campaign, "--local-scheduler"]
    return subprocess.Popen(cmd, cwd=common.REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


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


def _one_run(env: dict[str, str], var: Path, n: int, log) -> dict:
    # crash run: kill at >= 50% of the messages, then restart
    _clean(var)
    campaign = f"crash{n}"
    path = _outbox(var, campaign)
    proc = _send(env, campaign, log)
    seen, offset = 0, 0
    deadline = time.monotonic() + 300
    while seen < RECIPIENTS // 2:
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
    restart = _send(env, campaign, log)
    if restart.wait(timeout=600) != 0:
        raise RuntimeError("the restarted send failed; see bench/out/campaign_resume/runs.log")
    restart_s = time.perf_counter() - started
    lines = _lines(path)
    dupes = sum(c - 1 for c in collections.Counter(m["send_id"] for m in lines).values() if c > 1)
    crash_result = _result(var, campaign)

    # uninterrupted run of the same campaign size
    _clean(var)
    campaign = f"full{n}"
    started_wall = time.time()
    proc = _send(env, campaign, log)
    if proc.wait(timeout=600) != 0:
        raise RuntimeError("the uninterrupted send failed")
    ended = time.time()
    full = sorted(m["queued_at"] for m in _lines(_outbox(var, campaign)))
    remaining_s = ended - full[killed_at - 1]
    return {
        "restart_s": restart_s, "remaining_s": remaining_s, "full_s": ended - started_wall, "killed_at": killed_at,
        "duplicates": dupes, "unknown": crash_result["counts"]["unknown"], "sent": crash_result["counts"]["sent"],
        "full_rate": _result(var, campaign)["achieved_rate"],
    }


def main() -> list[dict]:
    env = _env()
    var = _prepare(env)
    with open(common.OUT / NAME / "runs.log", "wb") as log:
        runs = [_one_run(env, var, n, log) for n in range(RUNS)]
    _clean(var)
    ratios = [r["restart_s"] / r["remaining_s"] for r in runs]
    dupes = sum(r["duplicates"] for r in runs)
    baseline = statistics.median(r["remaining_s"] for r in runs)
    restart = [r["restart_s"] for r in runs]
    entries = [
        common.entry(f"{NAME}.restart_over_remaining_half", values=restart, unit="s", baseline=baseline,
                     goal=f"ratio <= {GOAL}", goal_met=statistics.median(restart) / baseline <= GOAL,
                     ratio_per_run=[round(x, 3) for x in ratios], killed_at=[r["killed_at"] for r in runs],
                     unknown_after_kill=[r["unknown"] for r in runs], recipients=RECIPIENTS, rate=RATE, burst=BURST,
                     concurrency=CONCURRENCY, uninterrupted_s=[round(r["full_s"], 2) for r in runs],
                     uninterrupted_msg_per_s=[r["full_rate"] for r in runs]),
        common.entry(f"{NAME}.duplicates", values=[r["duplicates"] for r in runs], unit="messages", baseline=None,
                     goal="0", goal_met=dupes == 0),
    ]
    return common.publish(entries)


if __name__ == "__main__":
    if common.is_child(sys.argv[1:]):
        raise SystemExit("campaign_resume runs its children through luigi")
    main()
