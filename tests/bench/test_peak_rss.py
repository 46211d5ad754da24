"""bench.common's peak RSS is the measured process's own, never its big parent's.

On Linux ru_maxrss survives fork and exec: a small child of a big process reports the big
one's peak. The harness (the pytest process here) first holds ~300 MB, then starts children
through `run_measured`, as every benchmark does, with each method (GNU time -v, VmHWM).
"""

from __future__ import annotations

import resource
import subprocess

import pytest

from bench import common

PARENT_MB = 300


def _allocate(mb: int) -> str:
    """Python code that touches `mb` MB (every page written, so all of it is resident)."""
    return f"ballast = b'\\x01' * ({mb} * 2**20)"


METHODS = [
    pytest.param("time", marks=pytest.mark.skipif(not common.gnu_time_works(), reason="no GNU /usr/bin/time -v")),
    "vmhwm",
]


@pytest.fixture(scope="module")
def big_parent() -> bytes:
    """This process, after it has allocated and touched ~PARENT_MB MB (held while the module's tests run)."""
    ballast = b"\x01" * (PARENT_MB * 2**20)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 >= PARENT_MB
    return ballast


@pytest.fixture(params=METHODS)
def method(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BENCH_PEAK_RSS", request.param)
    assert common.peak_rss_method() == request.param
    return request.param


def test_a_10_mb_child_of_a_300_mb_parent_reports_its_own_peak(big_parent: bytes, method: str) -> None:
    done = common.run_measured([common.PYTHON, "-c", _allocate(10)]).check()
    assert done.peak_rss_mb is not None
    assert 10 < done.peak_rss_mb < 100, f"{method}: {done.peak_rss_mb} MB"


def test_the_figure_follows_what_the_child_itself_allocates(big_parent: bytes, method: str) -> None:
    done = common.run_measured([common.PYTHON, "-c", _allocate(150)]).check()
    assert done.peak_rss_mb is not None
    assert 150 <= done.peak_rss_mb < 250, f"{method}: {done.peak_rss_mb} MB"


def test_run_child_adds_the_childs_own_peak_to_its_report(big_parent: bytes, method: str, tmp_path) -> None:
    csv = tmp_path / "tiny.csv"
    csv.write_text("customer_id,segment\nC1,new\n")
    report = common.run_child("bench.load_segments", ["read_csv", str(csv)])
    assert report["rows"] == 1
    assert 10 < report["peak_rss_mb"] < PARENT_MB / 2, f"{method}: {report['peak_rss_mb']} MB"


def test_getrusage_in_a_directly_started_child_reports_the_parents_peak(big_parent: bytes) -> None:
    """Why the harness does not ask the child for ru_maxrss (as it used to): it starts at the parent's peak."""
    code = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"
    proc = subprocess.run([common.PYTHON, "-c", code], capture_output=True, text=True, check=True)
    assert int(proc.stdout) >= PARENT_MB * 0.9


def test_vmhwm_runs_modules_in_the_same_process_and_keeps_the_exit_code(method: str) -> None:
    done = common.run_measured([common.PYTHON, "-m", "timeit", "-n", "1", "-r", "1", _allocate(60)]).check()
    assert "1 loop" in done.stdout
    assert done.peak_rss_mb is not None and 60 <= done.peak_rss_mb < 150
    failed = common.run_measured([common.PYTHON, "-c", "import sys; sys.exit(3)"])
    assert failed.returncode == 3 and failed.peak_rss_mb is None
    with pytest.raises(RuntimeError, match="exited 3"):
        failed.check()
