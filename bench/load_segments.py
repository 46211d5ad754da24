"""LoadSegments at 1,000,000 rows against a bare `pyarrow.csv.read_csv` of the same file.

The input is generated once (tasks.demo.sample_segments.write_sample_csv, 1% faulty rows, fixed
seed) under <out>/load_segments/ and reused. Each run is a fresh child process with the
file in the page cache (a warm-up read first): the baseline child times one
`pyarrow.csv.read_csv(path)` (all defaults, threads on); the measured child times
`tasks.campaign.segments.load_segments` (what LoadSegments.run calls, with the [segments] defaults:
validation, customers.parquet, rejects.csv, summary.json). Figures: time ratio (goal <= 2.0)
and the load's own peak RSS (bench.common.PeakRss) over the file size; read_csv's own peak
is kept beside it. Smoke mode: 2,000 rows, one run.

    python -m bench.load_segments [--smoke]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import common

NAME = "load_segments"
INVALID_RATIO = 0.01
SEED = 20261122
GOAL = 2.0


@dataclass(frozen=True)
class Sizes:
    rows: int
    runs: int


FULL = Sizes(rows=1_000_000, runs=3)
SMOKE = Sizes(rows=2_000, runs=1)


def input_file(rows: int) -> Path:
    """The generated CSV of `rows` rows (made once; regenerated if missing)."""
    path = common.out_dir() / NAME / f"segments_{rows}.csv"
    if not path.exists():
        from tasks.demo.sample_segments import write_sample_csv

        path.parent.mkdir(parents=True, exist_ok=True)
        write_sample_csv(path, rows, INVALID_RATIO, SEED)  # atomic
    return path


def _warm(path: Path) -> None:
    """Read the file once into the page cache, in chunks (the harness keeps none of it)."""
    with open(path, "rb") as fh:
        while fh.read(8 << 20):
            pass


def child(argv: list[str]) -> None:
    mode, path = argv[0], Path(argv[1])
    if mode == "read_csv":
        import pyarrow.csv as pacsv

        started = time.perf_counter()
        table = pacsv.read_csv(path)
        common.child_report({"seconds": time.perf_counter() - started, "rows": table.num_rows})
        return
    from tasks.campaign.segments import LoadOptions, load_segments

    out = Path(argv[2])
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = load_segments(path, out, LoadOptions())
    common.child_report({"seconds": time.perf_counter() - started, "rows": result.summary["rows_read"],
                         "valid": result.summary["valid"], "rejected": result.summary["rejected"]})


def main() -> list[dict]:
    sizes = common.pick(FULL, SMOKE)
    env = common.private_env(NAME)
    path = input_file(sizes.rows)
    size_mb = path.stat().st_size / 2**20
    _warm(path)
    out = common.out_dir() / NAME / "out"
    base, base_rss, load, rss = [], [], [], []
    for _ in range(sizes.runs):
        report = common.run_child("bench.load_segments", ["read_csv", str(path)], env)
        base.append(report["seconds"])
        base_rss.append(report["peak_rss_mb"])
        report = common.run_child("bench.load_segments", ["load", str(path), str(out)], env)
        load.append(report["seconds"])
        rss.append(report["peak_rss_mb"])
    ratios = [lo / b for lo, b in zip(load, base, strict=True)]
    baseline = statistics.median(base)
    entries = [
        common.entry(f"{NAME}.time_over_read_csv", values=load, unit="s", baseline=baseline,
                     goal=f"ratio <= {GOAL}", goal_met=statistics.median(load) / baseline <= GOAL,
                     peak_rss_mb=max(rss), read_csv_peak_rss_mb=max(base_rss), rows=report["rows"],
                     rejected=report["rejected"], file_mb=round(size_mb, 1),
                     ratio_per_run=[round(r, 3) for r in ratios]),
        common.entry(f"{NAME}.peak_rss_over_file_size", values=rss, unit="MB", baseline=size_mb,
                     digits=1, peak_rss_mb=max(rss), read_csv_peak_rss_mb=max(base_rss), rows=report["rows"]),
    ]
    return common.publish(entries)


if __name__ == "__main__":
    common.main_or_child(sys.argv[1:], main, child, "bench.load_segments")
