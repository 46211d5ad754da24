"""RunAll through the cron wrapper with --workers 3 against a real luigid; checked through its HTTP API."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from tests.e2e.conftest import SEND_RATE, Luigid, run_cron, runs
from tests.tasks.campaign_helpers import write_customers

DAY = dt.date(2026, 3, 2)
SENDS = {"SendEmailCampaign", "SendSmsCampaign", "SendPushNotification"}
CUSTOMERS = 400  # at SEND_RATE/s each send takes about 4 s: longer than the ELT task that may hold a worker
FAMILIES = {"RunAll", "BuildAllTables", "StageTable", "PublishTable", "LoadSegments", *SENDS}

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
    assert {graph[dep]["name"] for dep in root["deps"]} == {"BuildAllTables", *SENDS}

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
    assert (var_path / "luigid" / "luigid.pid").read_text().strip() == str(luigid.proc.pid)
    luigid.stop()  # SIGTERM: luigid saves its state under var/luigid and removes its pid file
    assert (var_path / "luigid" / "state.pickle").stat().st_size > 0
    assert not (var_path / "luigid" / "luigid.pid").exists()
    assert " INFO " not in "".join(x for x in result.stdout.splitlines(True) if "] snowflake." in x)
