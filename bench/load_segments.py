"""LoadSegments at 1,000,000 and 5,000,000 rows against a bare `pyarrow.csv.read_csv` of the same file.

The input is generated once (tasks.demo.sample_segments.write_sample_csv, 1% faulty rows, fixed
seed) under <out>/load_segments/ and reused. Each run is a fresh child process with the
file in the page cache (a warm-up read first): the baseline child times one
`pyarrow.csv.read_csv(path)` (all defaults, threads on); the measured child times
`tasks.campaign.segments.load_segments` (what LoadSegments.run calls, with the [segments] defaults:
validation, customers.parquet, rejects.csv, summary.json). Figures, per size: time ratio
(goal <= 2.0); the floor's ratio, what the load's reader and Parquet writer alone cost on the
load's ranges and threads, with no check at all (`_floor`); the load's own peak RSS
(bench.common.PeakRss) over the file size, with read_csv's own peak beside it; and the peak's
growth from the small size to the large one against the growth in rows (goal: less than
linear, and at most 1 GB at 5M rows). Smoke mode: 2,000 and 5,000 rows, one run each.

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


# the 1M baseline swings 0.15-0.6 s from run to run on the 2-core VM (read_csv's fresh pages): five runs there
FULL = (Sizes(rows=1_000_000, runs=5), Sizes(rows=5_000_000, runs=3))
SMOKE = (Sizes(rows=2_000, runs=1), Sizes(rows=5_000, runs=1))
PEAK_LIMIT_MB = 1024  # at the large size


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
    import tasks.campaign.segments.write  # noqa: F401 - load_segments imports it lazily: outside the clock
    from tasks.campaign.segments import LoadOptions, load_segments

    out = Path(argv[2])
    shutil.rmtree(out, ignore_errors=True)
    if mode == "floor":
        started = time.perf_counter()
        rows = _floor(path, out)
        common.child_report({"seconds": time.perf_counter() - started, "rows": rows})
        return
    started = time.perf_counter()
    result = load_segments(path, out, LoadOptions())
    common.child_report({"seconds": time.perf_counter() - started, "rows": result.summary["rows_read"],
                         "valid": result.summary["valid"], "rejected": result.summary["rejected"]})


def _floor(path: Path, out: Path) -> int:
    """What a load costs before any check: the load's reader on the load's ranges and threads, every
    record written as it is to a Parquet file by the load's writer (bytes taken as strings, no
    decoding, trimming, ids, addresses or rejects). Returns the rows written."""
    import collections
    import concurrent.futures

    import pyarrow as pa

    from tasks.campaign.segments import LoadOptions, plan_load
    from tasks.campaign.segments.model import customers_schema
    from tasks.campaign.segments.write import parquet_writer

    plan = plan_load(path, LoadOptions())
    schema = customers_schema(plan.extras)
    out.mkdir(parents=True, exist_ok=True)

    def work(start: int, end: int) -> pa.Table:
        chunk = plan.read(start, end)
        return pa.Table.from_arrays([c.view(pa.string()) for c in chunk.columns], schema=schema)

    rows = 0
    with (concurrent.futures.ThreadPoolExecutor(plan.workers) as pool,
          parquet_writer(out / "floor.parquet", schema) as writer):
        pending: collections.deque = collections.deque()
        for start, end in plan.ranges:  # at most 2 x workers ranges in flight, written in file order
            pending.append(pool.submit(work, start, end))
            while len(pending) > 2 * plan.workers or (pending and pending[0].done()):
                table = pending.popleft().result()
                writer.write_table(table)
                rows += table.num_rows
        for future in pending:
            table = future.result()
            writer.write_table(table)
            rows += table.num_rows
    return rows


def measure(sizes: Sizes, label: str, env: dict[str, str]) -> tuple[list[dict], float]:
    """The two entries for one file size (named by the full run's size, `label`), and the load's
    highest peak RSS (MB)."""
    path = input_file(sizes.rows)
    size_mb = path.stat().st_size / 2**20
    _warm(path)
    out = common.out_dir() / NAME / "out"
    base, base_rss, load, rss, floor, floor_rss = [], [], [], [], [], []
    for _ in range(sizes.runs):
        report = common.run_child("bench.load_segments", ["read_csv", str(path)], env)
        base.append(report["seconds"])
        base_rss.append(report["peak_rss_mb"])
        report = common.run_child("bench.load_segments", ["load", str(path), str(out)], env)
        load.append(report["seconds"])
        rss.append(report["peak_rss_mb"])
        report_floor = common.run_child("bench.load_segments", ["floor", str(path), str(out)], env)
        floor.append(report_floor["seconds"])
        floor_rss.append(report_floor["peak_rss_mb"])
    shutil.rmtree(out, ignore_errors=True)
    ratios = [lo / b for lo, b in zip(load, base, strict=True)]
    baseline = statistics.median(base)
    entries = [
        common.entry(f"{NAME}.time_over_read_csv.{label}", values=load, unit="s", baseline=baseline,
                     goal=f"ratio <= {GOAL}", goal_met=statistics.median(load) / baseline <= GOAL,
                     peak_rss_mb=max(rss), read_csv_peak_rss_mb=max(base_rss), rows=report["rows"],
                     rejected=report["rejected"], file_mb=round(size_mb, 1),
                     ratio_per_run=[round(r, 3) for r in ratios]),
        common.entry(f"{NAME}.floor_over_read_csv.{label}", values=floor, unit="s", baseline=baseline,
                     peak_rss_mb=max(floor_rss), rows=report_floor["rows"],
                     ratio_per_run=[round(f / b, 3) for f, b in zip(floor, base, strict=True)]),
        common.entry(f"{NAME}.peak_rss_over_file_size.{label}", values=rss, unit="MB", baseline=size_mb,
                     digits=1, peak_rss_mb=max(rss), read_csv_peak_rss_mb=max(base_rss), rows=report["rows"]),
    ]
    return entries, max(rss)


def main() -> list[dict]:
    small, large = common.pick(FULL, SMOKE)
    env = common.private_env(NAME)
    entries, small_peak = measure(small, "1M", env)
    large_entries, large_peak = measure(large, "5M", env)
    growth = large_peak / small_peak
    rows_growth = large.rows / small.rows
    entries += large_entries
    entries.append(common.entry(
        f"{NAME}.peak_rss_growth", values=[growth], unit="x", baseline=rows_growth, digits=3,
        goal=f"< {rows_growth:g}x (sublinear) and <= {PEAK_LIMIT_MB} MB at {large.rows:,} rows",
        goal_met=growth < rows_growth and (common.smoke() or large_peak <= PEAK_LIMIT_MB),
        small_rows=small.rows, large_rows=large.rows, small_peak_mb=small_peak, large_peak_mb=large_peak,
        peak_rss_mb=large_peak,
    ))
    return common.publish(entries)


if __name__ == "__main__":
    common.main_or_child(sys.argv[1:], main, child, "bench.load_segments")
