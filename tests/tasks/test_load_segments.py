"""LoadSegments under a real luigi.build (local scheduler) on the bundled sample and on bad files."""

from __future__ import annotations

import csv
import datetime
import json
import logging
from pathlib import Path

import luigi
import pyarrow.parquet as pq
import pytest

from tasks.campaign.tasks import LoadSegments
from tasks.config import PROJECT_ROOT
from tasks.errors import DataValidationError

DAY = datetime.date(2026, 11, 22)
HEADER = "customer_id,segment,email,phone,device_token\n"


def build(task: luigi.Task) -> bool:
    return luigi.build([task], local_scheduler=True, workers=1, log_level="INFO")


@pytest.fixture
def failures() -> list[BaseException]:
    """Exceptions LoadSegments failed with under luigi.build (workers=1 runs the task in this process)."""
    seen: list[BaseException] = []

    def on_failure(task: luigi.Task, exc: BaseException) -> None:
        seen.append(exc)

    LoadSegments.event_handler(luigi.Event.FAILURE)(on_failure)
    yield seen
    LoadSegments.remove_event_handler(luigi.Event.FAILURE, on_failure)


def test_bundled_sample_loads_and_rerun_is_a_no_op(var_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    task = LoadSegments(date=DAY)
    assert build(task)
    out = var_path / "segments" / "2026-11-22"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_read"] == 1000 == summary["valid"] + summary["rejected"]
    assert summary["rejected_by_reason"] == {"duplicate_customer_id": 3, "invalid_segment": 1,
                                             "missing_customer_id": 2}
    assert pq.read_table(out / "customers.parquet").num_rows == summary["valid"] == 994
    with open(out / "rejects.csv", newline="") as fh:
        assert sum(r["scope"] == "row" for r in csv.DictReader(fh)) == 6
    assert task.customers_path() == out / "customers.parquet"

    # no e-mail, phone or token of the file appears in anything logged
    with open(PROJECT_ROOT / "config" / "sample_segments.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    logged = caplog.text.lower()
    assert "1000 rows read, 994 valid, 6 rejected" in caplog.text
    for row in rows:
        for key in ("email", "device_token"):
            if row[key].strip():
                assert row[key].strip().lower() not in logged
        digits = "".join(ch for ch in row["phone"] if ch.isdigit())
        if len(digits) >= 7:
            assert digits[-7:] not in logged

    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert build(LoadSegments(date=DAY))
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes


def test_too_many_rejects_fails_with_rejects_but_no_summary(tmp_path: Path, var_path: Path, luigi_cfg,
                                                            failures: list[BaseException]) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(HEADER + "c1,new,a@example.com,,\nc1,new,b@example.com,,\nc2,gold,c@example.com,,\n"
                   + "".join(f"c{i},new,x{i}@example.com,,\n" for i in range(3, 20)))
    luigi_cfg.set("segments", "input_path", src)
    task = LoadSegments(date=DAY)
    assert not build(task)
    out = var_path / "segments" / "2026-11-22"
    assert (out / "rejects.csv").exists()
    assert not (out / "summary.json").exists() and not (out / "customers.parquet").exists()
    assert not task.complete()
    [err] = failures
    assert isinstance(err, DataValidationError) and [f.name for f in err.failures] == ["max_reject_ratio"]

    luigi_cfg.set("segments", "max_reject_ratio", 0.2)  # 2 of 19 rejected passes a looser gate
    assert build(LoadSegments(date=DAY))
    assert json.loads((out / "summary.json").read_text())["rejected"] == 2


@pytest.mark.parametrize("content, check", [
    (None, "input_exists"),
    ("", "not_empty"),
    (HEADER, "not_empty"),
    ("customer_id,segment,email\nc1,new,a@example.com\n", "required_columns"),
])
def test_unusable_files_fail_with_data_validation_error(tmp_path: Path, var_path: Path, luigi_cfg,
                                                       failures: list[BaseException], content: str | None,
                                                       check: str) -> None:
    src = tmp_path / "in.csv"
    if content is not None:
        src.write_text(content)
    luigi_cfg.set("segments", "input_path", src)
    task = LoadSegments(date=DAY)
    assert not build(task)
    assert not (var_path / "segments" / "2026-11-22" / "summary.json").exists()
    [err] = failures
    assert isinstance(err, DataValidationError) and [f.name for f in err.failures] == [check]
