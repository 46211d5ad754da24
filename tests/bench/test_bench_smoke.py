"""Every benchmark runs once at a tiny size (BENCH_SMOKE=1), so none can silently break again.

Each module runs as `make bench` would run it, `python -m bench.<name>`, with its results
in this test's tmp dir (BENCH_RESULTS) and its working files there too (BENCH_OUT); the
figures are checked for presence and sanity, never for speed (machines are noisy).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from bench import common
from bench.__main__ import MODULES
from tests.conftest import PYTHON, REPO

pytestmark = pytest.mark.slow  # real subprocesses: benchmark children, luigi runs, the embedded warehouse

# every figure each benchmark publishes; all but campaign_resume.duplicates carry a peak RSS
FIGURES = {
    "load_segments": {f"load_segments.{figure}.{size}"
                      for figure in ("time_over_read_csv", "floor_over_read_csv", "peak_rss_over_file_size")
                      for size in ("1M", "5M")} | {"load_segments.peak_rss_growth"},
    "email_batching": {"email_batching.batched_recipients_per_s", "email_batching.single_recipients_per_s"},
    "campaign_pace": {f"campaign_pace.{mode}_{latency}" for mode in ("sender", "sequential", "fixed_window")
                      for latency in ("100ms", "300ms")},
    "campaign_resume": {"campaign_resume.restart_over_remaining_half", "campaign_resume.duplicates"},
    "campaign_scale": {"campaign_scale.peak_rss_mb_20k", "campaign_scale.recipients_per_s_20k",
                       "campaign_scale.first_request_s_per_million", "campaign_scale.noop_rerun_s_20k",
                       "campaign_scale.restart_over_remaining_half"},
    "elt": {"elt.mau_summary_over_bare_duckdb", "elt.runall_noop_over_import", "elt.mau_incremental_over_full"},
    "cli": {f"cli.{figure}_over_import_luigi" for figure in ("import_tasks", "help", "status", "status_live")},
    "events": {"events.stored_per_s.sqlite", "events.stored_per_s.postgres"},
}
NO_PEAK_RSS = {"campaign_resume.duplicates"}
NOT_BENCHMARKS = {"__init__", "__main__", "common", "peak", "table"}


def readme_benchmarks() -> set[str]:
    """The modules listed in docs/benchmarks.md's table of modules (`| `name` | ... |` rows)."""
    text = (REPO / "docs" / "benchmarks.md").read_text()
    return set(re.findall(r"^\| `(\w+)` \|", text, flags=re.MULTILINE))


def test_every_benchmark_is_run_by_make_bench_listed_in_the_readme_and_smoke_tested() -> None:
    files = {p.stem for p in (REPO / "bench").glob("*.py")} - NOT_BENCHMARKS
    assert set(MODULES) == files
    assert readme_benchmarks() == files
    assert set(FIGURES) == files


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_runs_at_smoke_size(name: str, tmp_path: Path, var_path: Path,
                                      subprocess_env: dict[str, str]) -> None:
    results = tmp_path / "results.json"
    env = {**subprocess_env, "BENCH_SMOKE": "1", "BENCH_RESULTS": str(results), "BENCH_OUT": str(tmp_path / "out")}
    proc = subprocess.run([PYTHON, "-m", f"bench.{name}"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    rows = {row["name"]: row for row in json.loads(results.read_text())}
    assert set(rows) == FIGURES[name]
    for row in rows.values():
        where = f"{row['name']}: {row}"
        assert row["smoke"] is True, where
        assert row["runs"] >= 1 and row["min"] <= row["value"] <= row["max"], where
        if row["name"] == "campaign_resume.duplicates":
            assert row["value"] == 0 and row["goal_met"] is True, where
        else:
            assert row["value"] > 0 and row["baseline"] > 0 and row["ratio"] > 0, where
        if row["name"] not in NO_PEAK_RSS:
            assert 10 < row["peak_rss_mb"] < 2000, where
            assert row["peak_rss_method"] in common.PEAK_METHODS, where
        for key in ("read_csv_peak_rss_mb", "baseline_peak_rss_mb", "uninterrupted_peak_rss_mb"):
            if key in row:
                assert 10 < row[key] < 2000, where
    _check_specifics(name, rows)

    # its own var dir and config under BENCH_OUT: nothing in the one it inherited (in `make bench`: var/)
    assert not any(var_path.iterdir())
    assert (tmp_path / "out" / name / "luigi.cfg").exists()

    table = subprocess.run([PYTHON, "-m", "bench.table"], cwd=REPO, env=env, capture_output=True, text=True,
                           check=True)
    assert all(f"| {figure} |" in table.stdout for figure in FIGURES[name])


def _check_specifics(name: str, rows: dict[str, dict]) -> None:
    if name == "load_segments":
        for size, rows_read in (("1M", 2_000), ("5M", 5_000)):
            load = rows[f"load_segments.time_over_read_csv.{size}"]
            assert load["rows"] == rows_read and 0 < load["rejected"] < rows_read
            assert rows[f"load_segments.peak_rss_over_file_size.{size}"]["value"] == load["peak_rss_mb"]
            floor = rows[f"load_segments.floor_over_read_csv.{size}"]  # every record written, none checked
            assert floor["rows"] == rows_read and floor["baseline"] == load["baseline"]
        growth = rows["load_segments.peak_rss_growth"]
        assert growth["value"] == round(growth["large_peak_mb"] / growth["small_peak_mb"], 3)
    elif name == "email_batching":
        assert rows["email_batching.batched_recipients_per_s"]["recipients"] == 300
    elif name == "campaign_pace":
        assert all(row["max_1s_window"] > 0 for row in rows.values())
    elif name == "campaign_resume":
        restart = rows["campaign_resume.restart_over_remaining_half"]
        assert all(0 < k < restart["recipients"] for k in restart["killed_at"])
    elif name == "elt":
        assert rows["elt.mau_summary_over_bare_duckdb"]["sessions"] == 1_000
        incremental = rows["elt.mau_incremental_over_full"]  # the speed goal is not checked at this size
        assert (incremental["sessions"], incremental["months"]) == (2_000, 24)
        assert incremental["rows_equal"] is True and incremental["months_published"] == 24
    elif name == "cli":  # every figure against the same `import luigi` runs, each command named
        for row in rows.values():
            assert len(row["baseline_runs"]) == row["runs"]
            assert min(row["baseline_runs"]) <= row["baseline"] <= max(row["baseline_runs"])
        assert "recorded" in rows["cli.status_over_import_luigi"]["command"]
        assert "--live" in rows["cli.status_live_over_import_luigi"]["command"]
    elif name == "events":  # every acknowledged event is in the store, each once
        assert all(row["stored"] == row["batches"] * row["batch_size"] == 300 for row in rows.values())
