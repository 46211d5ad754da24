"""AlertLedger: storm-control decisions per run, atomic across processes."""

from __future__ import annotations

import multiprocessing

from tasks.ops.alert_ledger import ALERT, COUNT, DEFER, WARNING_SUFFIX, AlertLedger
from tasks.ops.summary import DaySummary, render


def test_first_failure_alerts_repeats_count_and_the_cap_defers(tmp_path):
    ledger = AlertLedger(tmp_path / "ledger.sqlite")
    decide = lambda task: ledger.record("run1", task, f"{task} failed", cap=2, alert_on_retry=False)  # noqa: E731
    assert [decide(t).action for t in ("a", "a", "b", "c", "c", "a")] == [ALERT, COUNT, ALERT, DEFER, DEFER, COUNT]
    assert decide("a").count == 4
    # another run starts with a fresh cap
    assert ledger.record("run2", "c", "c failed", cap=2, alert_on_retry=False).action == ALERT

    pending = {p.task_id: p for p in ledger.take_pending(run_id="run1")}
    assert set(pending) == {"a", "c"}  # b failed once and was alerted: nothing left to say
    assert pending["a"].alerted and pending["a"].count == 4
    assert not pending["c"].alerted and pending["c"].count == 2
    assert ledger.take_pending(run_id="run1") == []  # reported once


def test_alert_on_retry_alerts_every_attempt_within_the_cap(tmp_path):
    ledger = AlertLedger(tmp_path / "ledger.sqlite")
    actions = [ledger.record("r", "a", "a failed", cap=3, alert_on_retry=True).action for _ in range(4)]
    assert actions == [ALERT, ALERT, ALERT, DEFER]
    (pending,) = ledger.take_pending(run_id="r")
    assert pending.count == 4


def test_a_data_check_warning_is_counted_apart_from_failures(tmp_path):
    # a warning is alerted like a failure, but the task went on: the run summary said "1 failed"
    ledger = AlertLedger(tmp_path / "ledger.sqlite")
    ledger.record("r", "BuildTable(mau)" + WARNING_SUFFIX, "BuildTable warned", cap=5, alert_on_retry=False)
    ledger.record("r", "SendSms(demo)", "SendSms failed", cap=5, alert_on_retry=False)
    ledger.record("r", "SendSms(demo)", "SendSms failed", cap=5, alert_on_retry=False)
    assert ledger.run_counts("r") == (1, 1, 2)
    assert ledger.run_tasks("r") == ["SendSms failed"]
    assert ledger.run_tasks("r", warnings=True) == ["BuildTable warned"]
    assert ledger.run_counts("other") == (0, 0, 0)

    line = render(DaySummary(date="2026-03-02", run={
        "task": "RunAll", "status": "ok", "duration_s": 1.0, "alerts": 2, "alerts_where": "Slack",
        "failed_tasks": ledger.run_tasks("r"), "warned_tasks": ledger.run_tasks("r", warnings=True)}))
    assert "alerts: 2 (Slack); 1 failed: SendSms failed; 1 warned: BuildTable warned" in line


def _record_one(path, task_id, out):
    out.put(AlertLedger(path).record("shared", task_id, "x", cap=3, alert_on_retry=False).action)


def test_the_cap_holds_across_processes(tmp_path):
    path = tmp_path / "ledger.sqlite"
    AlertLedger(path)
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_record_one, args=(path, f"t{i}", out)) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    actions = sorted(out.get(timeout=5) for _ in procs)
    assert actions.count(ALERT) == 3 and actions.count(DEFER) == 5
