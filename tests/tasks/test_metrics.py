"""The metrics textfile keeps every series it last saw: a full day on the embedded warehouse, then a
LoadSegments-only run for another date, and the first run's send and table series are still there, each
with the run date it describes."""

from __future__ import annotations

import datetime as dt
import io
import json
import stat
import time
from pathlib import Path
from typing import Any

import luigi
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tasks import status
from tasks.campaign.tasks import LoadSegments
from tasks.ops import metrics
from tasks.ops.summary import DaySummary
from tasks.run_all import RunAll
from tests.tasks.campaign_helpers import DAY, write_customers
from tests.warehouse_fixtures import seed_raw

DAY2 = DAY + dt.timedelta(days=1)
Key = tuple[str, tuple[tuple[str, str], ...]]


def samples(path: Path) -> dict[Key, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(path.read_text()) for s in family.samples}


def midnight(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()


def summarize(task: str, day: dt.date) -> DaySummary:
    """What the end of a `luigi --module tasks <task> --date <day>` run does: collect, record, export."""
    summary = status.summarize_run([task, "--date", day.isoformat()], started=time.time(), out=io.StringIO())
    assert summary is not None
    return summary


@pytest.mark.slow
def test_a_partial_run_keeps_every_series_of_the_last_full_run(warehouse: Any, luigi_cfg: Any, tmp_path: Path,
                                                               var_path: Path) -> None:
    seed_raw(warehouse, tmp_path)
    write_customers(tmp_path / "customers.csv", 30)
    luigi_cfg.set("segments", "input_path", tmp_path / "customers.csv")
    assert luigi.build([RunAll(date=DAY)], local_scheduler=True, log_level="WARNING")
    summarize("RunAll", DAY)
    textfile = var_path / "metrics" / metrics.TEXTFILE
    first = samples(textfile)
    send_series = {k: v for k, v in first.items() if k[0].startswith(("tasks_messages", "tasks_send_"))}
    table_series = {k: v for k, v in first.items() if k[0].startswith(("tasks_table_", "tasks_check_"))}
    channels = {dict(labels)["channel"] for name, labels in send_series if name == "tasks_messages"}
    assert channels == {"email", "sms", "push"}
    sent = ("tasks_messages", (("campaign", "demo"), ("channel", "email"), ("segment", "all"), ("state", "sent")))
    assert first[sent] == 30
    assert first[("tasks_table_published", (("table", "analytics.mau_summary"),))] == 1

    # another day, only the segment load, from a smaller file
    write_customers(tmp_path / "fewer.csv", 12)
    luigi_cfg.set("segments", "input_path", tmp_path / "fewer.csv")
    assert luigi.build([LoadSegments(date=DAY2)], local_scheduler=True, log_level="WARNING")
    summarize("LoadSegments", DAY2)
    second = samples(textfile)

    missing = sorted(k for k in send_series if k not in second)
    assert not missing, f"series of the full run gone after a partial run: {missing[:5]}"
    assert {k: second[k] for k in send_series} == send_series, "each keeps the values of the run that produced it"
    assert {k: second[k] for k in table_series} == table_series
    send_labels = (("campaign", "demo"), ("channel", "email"), ("segment", "all"))
    assert second[("tasks_send_date_timestamp_seconds", send_labels)] == midnight(DAY), "honest about its date"
    assert second[("tasks_table_date_timestamp_seconds", (("table", "analytics.mau_summary"),))] == midnight(DAY)
    # what the partial run did report is its own, with its own date
    assert second[("tasks_segment_rows", (("outcome", "read"),))] == 12
    assert second[("tasks_segment_date_timestamp_seconds", ())] == midnight(DAY2)
    assert second[("tasks_run_date_timestamp_seconds", (("task", "LoadSegments"),))] == midnight(DAY2)
    assert second[("tasks_run_date_timestamp_seconds", (("task", "RunAll"),))] == midnight(DAY)
    assert second[("tasks_run_success", (("task", "RunAll"),))] == 1
    assert second[("tasks_summary_date_timestamp_seconds", ())] == midnight(DAY2), "the latest run's date"

    store = var_path / "metrics" / metrics.STORE
    assert stat.S_IMODE(store.stat().st_mode) == 0o600, "owner-only: it names campaigns and segments"
    assert "send/email/demo/all" in json.loads(store.read_text())["subjects"]


def _send(counts: dict[str, int]) -> dict[str, Any]:
    return {"channel": "sms", "campaign": "demo", "segment": "all", "counts": counts, "rate": None,
            "duration_s": None}


def test_a_subject_reported_again_is_replaced_whole(var_path: Path) -> None:
    """A rerun of a send that finished its pending recipients: the old `pending` series goes, it does not
    linger beside the new counts."""
    textfile = var_path / "metrics" / metrics.TEXTFILE
    labels = (("campaign", "demo"), ("channel", "sms"), ("segment", "all"))
    metrics.export(DaySummary(date="2026-03-02", sends=[_send({"sent": 5, "pending": 3})]))
    assert samples(textfile)[("tasks_messages", (*labels, ("state", "pending")))] == 3
    metrics.export(DaySummary(date="2026-03-02", sends=[_send({"sent": 8})]))
    got = samples(textfile)
    assert got[("tasks_messages", (*labels, ("state", "sent")))] == 8
    assert ("tasks_messages", (*labels, ("state", "pending"))) not in got


def test_an_unreadable_store_starts_afresh_and_never_fails_the_run(var_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    store = var_path / "metrics" / metrics.STORE
    store.parent.mkdir(parents=True)
    store.write_text("{not json")
    path = metrics.export(DaySummary(date="2026-03-02", sends=[_send({"sent": 1})]))
    assert path is not None
    assert samples(path)[("tasks_messages", (("campaign", "demo"), ("channel", "sms"), ("segment", "all"),
                                             ("state", "sent")))] == 1
    assert "unreadable, starting afresh" in caplog.text
    assert json.loads(store.read_text())["version"] == metrics.STORE_VERSION
