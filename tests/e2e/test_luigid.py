"""RunAll through the cron wrapper with --workers 3 against a real luigid; checked through its HTTP API,
its Prometheus /metrics, the run summary that ends the run, and the metrics textfile."""

from __future__ import annotations

import datetime as dt
import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import SEND_RATE, Luigid, run_cron, runs
from tests.tasks.campaign_helpers import write_customers

DAY = dt.date(2026, 3, 2)
SENDS = {"SendEmailCampaign", "SendSmsCampaign", "SendPushNotification"}
CUSTOMERS = 400  # at SEND_RATE/s each send takes about 4 s: longer than the ELT task that may hold a worker
EXPORTS = {"ExportSegmentLoad", "ExportSendResults", "ExportCampaignEvents"}
FAMILIES = {"RunAll", "BuildAllTables", "StageTable", "PublishTable", "LoadSegments", *SENDS, *EXPORTS}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text exposition, parsed by prometheus_client's own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}

pytestmark = pytest.mark.slow  # real subprocesses: luigi runs, the wrapper, luigid


def test_runall_on_luigid_whole_graph_done_and_sends_overlap(
    small_day, luigid: Luigid, luigi_cfg, subprocess_env, var_path: Path, tmp_path: Path
) -> None:
    write_customers(tmp_path / "customers.csv", CUSTOMERS)
    assert CUSTOMERS / SEND_RATE >= 3
    luigi_cfg.set("schedule", "scheduler_url", luigid.url)
    result = run_cron(subprocess_env, "--date", str(DAY))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    done = luigid.api("task_list", {"status": "DONE", "upstream_status": "", "search": ""})
    assert {t["name"] for t in done.values()} == FAMILIES
    graph = luigid.api("graph")
    assert graph and set(graph) == set(done)  # the whole graph, and all of it DONE
    assert {t["status"] for t in graph.values()} == {"DONE"}
    assert all(t["params"]["date"] == str(DAY) for t in graph.values())
    root = next(t for t in graph.values() if t["name"] == "RunAll")
    assert {graph[dep]["name"] for dep in root["deps"]} == {"BuildAllTables", *SENDS, *EXPORTS}

    sends = [t for t in done.values() if t["name"] in SENDS]
    # each went RUNNING (time_running, stamped when a worker took it) before any of them was DONE
    # (last_updated, stamped at the DONE status change): all three ran at the same time
    last_start = max(t["time_running"] for t in sends)
    first_end = min(t["last_updated"] for t in sends)
    assert last_start < first_end, [(t["name"], t["time_running"], t["last_updated"]) for t in sends]
    workers = luigid.api("worker_list")
    assert any("workers=3" in w["name"] for w in workers), [w["name"] for w in workers]

    record = runs(var_path)[-1]
    assert record["status"] == "ok" and record["exit_code"] == 0 and record["scheduler"] == luigid.url
    assert "--scheduler-url" in record["command"] and "--local-scheduler" not in record["command"]
    # luigi's output went through config/logging.cfg: timestamp, level, pid, logger, task id
    line = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO +\[pid \d+\] luigi-interface: .*done +"
                      r"SendSmsCampaign\(date=2026-03-02", re.M)
    assert line.search(result.stdout), result.stdout[-2000:]
    # luigid's own Prometheus collector: task states by family
    with urllib.request.urlopen(f"{luigid.url}/metrics", timeout=10) as resp:
        scraped = samples(resp.read().decode())
    several = {"ExportSendResults": 3, "StageTable": 3, "PublishTable": 3}  # 3 channels; 3 tables in tables.toml
    for family in FAMILIES:
        assert scraped[("luigi_task_done_total", (("family", family),))] == several.get(family, 1), family
    assert not any(name == "luigi_task_failed_total" and value for (name, _), value in scraped.items())

    # the luigi run ended on the summary table, recorded its run, and wrote our metrics textfile
    summary = result.stdout[result.stdout.rindex("Summary for 2026-03-02"):]
    assert "RunAll ok" in summary and "analytics.mau_summary" in summary and "alerts: 0" in summary
    assert re.search(rf"sms demo/all +outbox +{CUSTOMERS} +{CUSTOMERS} ", summary), summary
    (luigi_run,) = runs(var_path, "luigi")
    assert luigi_run["status"] == "ok" and luigi_run["run_date"] == str(DAY)
    ours = samples((var_path / "metrics" / "mau_campaign_tasks.prom").read_text())
    for channel in ("email", "sms", "push"):
        key = ("tasks_messages", (("campaign", "demo"), ("channel", channel), ("segment", "all"), ("state", "sent")))
        assert ours[key] == CUSTOMERS
    assert ours[("tasks_run_success", (("task", "RunAll"),))] == 1
    assert ours[("tasks_segment_rows", (("outcome", "valid"),))] == CUSTOMERS
    assert ours[("tasks_table_published", (("table", "analytics.mau_summary"),))] == 1
    assert ours[("tasks_check_failures", (("status", "fail"), ("table", "analytics.mau_summary")))] == 0

    assert (var_path / "luigid" / "luigid.pid").read_text().strip() == str(luigid.proc.pid)
    luigid.stop()  # SIGTERM: luigid saves its state under var/luigid and removes its pid file
    assert (var_path / "luigid" / "state.pickle").stat().st_size > 0
    assert not (var_path / "luigid" / "luigid.pid").exists()
    assert " INFO " not in "".join(x for x in result.stdout.splitlines(True) if "] snowflake." in x)
