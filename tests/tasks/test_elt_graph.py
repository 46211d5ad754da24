"""The ELT as a graph and incremental tables, on the real embedded warehouse: failure isolation, cycles,
incremental equals full, schema changes, --full-refresh, and RangeDaily backfills (a real luigi process)."""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import re
import subprocess
import sys
from pathlib import Path

import luigi
import pyarrow as pa
import pytest

from tasks.elt import report
from tasks.elt.tasks import BuildAllTables, MauSummary
from tasks.errors import ConfigError
from tasks.ops import summary
from tasks.run_all import RunAll
from tasks.warehouse.client import WarehouseClient
from tests.warehouse_fixtures import expected_mau, published, seed_raw

REPO = Path(__file__).resolve().parents[2]
MAU_SQL = REPO / "config" / "sql" / "mau_summary.sql"
DAY = dt.date(2026, 6, 30)


def build(*tasks: luigi.Task, workers: int = 1) -> luigi.execution_summary.LuigiRunResult:
    return luigi.build(list(tasks), local_scheduler=True, workers=workers, detailed_summary=True)


def use_specs(tmp_path: Path, luigi_cfg, entries: str, sql: dict[str, str]) -> None:
    (tmp_path / "sql").mkdir(exist_ok=True)
    for name, text in sql.items():
        (tmp_path / "sql" / name).write_text(text)
    (tmp_path / "tables.toml").write_text(entries)
    luigi_cfg.set("elt", "table_specs", tmp_path / "tables.toml")


MAU = f"""
[[table]]
name = "analytics.mau_summary"
primary_key = ["month"]
sql = "{MAU_SQL}"
[table.incremental]
key = "month"
grain = "month"
lookback = 1
"""

GRAPH = MAU + """
[[table]]
name = "analytics.channel_bad"
primary_key = ["channel"]
sql = "sql/channel_bad.sql"
[table.checks]
expressions = ["sessions < 0"]

[[table]]
name = "analytics.channel_share"
primary_key = ["channel"]
sql = "sql/channel_share.sql"

[[table]]
name = "analytics.mau_growth"
primary_key = ["month"]
sql = "sql/mau_growth.sql"
"""
GRAPH_SQL = {
    "channel_bad.sql": "SELECT channel, COUNT(*) AS sessions FROM raw_data.user_session_channel GROUP BY channel",
    "channel_share.sql": "WITH t AS (SELECT SUM(sessions) AS n FROM analytics.channel_bad) "
                         "SELECT b.channel, b.sessions / t.n AS share FROM analytics.channel_bad AS b, t",
    "mau_growth.sql": "SELECT month, mau - LAG(mau) OVER (ORDER BY month) AS growth FROM analytics.mau_summary",
}


def test_a_failing_table_stops_only_the_tables_that_read_it(warehouse, tmp_path, luigi_cfg) -> None:
    raw = seed_raw(warehouse, tmp_path)
    use_specs(tmp_path, luigi_cfg, GRAPH, GRAPH_SQL)
    result = build(BuildAllTables(date=DAY), workers=2)
    assert not result.scheduling_succeeded
    assert published(warehouse) == expected_mau(*raw, DAY)
    growth = dict(warehouse.execute("SELECT month, growth FROM analytics.mau_growth"))
    assert sorted(growth) == sorted(expected_mau(*raw, DAY))
    tables = {r[0].lower() for r in warehouse.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'ANALYTICS'")}
    assert "channel_bad" not in tables and "channel_share" not in tables
    reports = {r["table"]: r for r in report.table_reports(warehouse, DAY)}
    assert [reports[t]["published"] for t in ("analytics.mau_summary", "analytics.mau_growth")] == [True, True]
    bad, share = reports["analytics.channel_bad"], reports["analytics.channel_share"]
    assert (bad["published"], bad["status"], bad["problems"]) == (False, "failed", ["expressions(sessions < 0) fail"])
    assert (share["published"], share["status"], share["blocked_by"]) == (False, "not built", "analytics.channel_bad")
    text = summary.render(summary.DaySummary(date=DAY, tables=list(reports.values())))
    assert "no (not built because of analytics.channel_bad)" in text
    assert "no (failed)" in text and "expressions(sessions < 0) fail" in text


def test_a_cycle_is_refused_before_anything_runs(warehouse, tmp_path, luigi_cfg) -> None:
    seed_raw(warehouse, tmp_path)
    use_specs(tmp_path, luigi_cfg, GRAPH.replace("analytics.channel_bad\"\nprimary_key", "analytics.channel_bad\"\n"
                                                 "depends_on = [\"analytics.channel_share\"]\nprimary_key"), GRAPH_SQL)
    cycle = "cycle: analytics.channel_bad -> analytics.channel_share -> analytics.channel_bad"
    with pytest.raises(ConfigError, match=re.escape(cycle)):
        BuildAllTables(date=DAY).requires()[1].requires().requires()
    assert not build(BuildAllTables(date=DAY)).scheduling_succeeded
    assert not warehouse.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'ANALYTICS' "
                                 "AND table_name = 'MAU_SUMMARY'")


def add_sessions(client: WarehouseClient, rows: list[tuple[str, dt.datetime, int]]) -> None:
    """Late raw rows: (sessionid, ts, userid), channel Organic."""
    for sessionid, ts, userid in rows:
        client.execute("INSERT INTO raw_data.session_timestamp VALUES (%(s)s, %(ts)s)", {"s": sessionid, "ts": ts})
        client.execute("INSERT INTO raw_data.user_session_channel VALUES (%(u)s, %(s)s, 'Organic')",
                       {"u": userid, "s": sessionid})


def with_rows(raw: tuple[pa.Table, pa.Table], rows: list[tuple[str, dt.datetime, int]]) -> tuple[pa.Table, pa.Table]:
    sessions, channels = raw
    extra_s = pa.table({"sessionid": [r[0] for r in rows], "ts": pa.array([r[1] for r in rows], pa.timestamp("us"))})
    extra_c = pa.table({"userid": pa.array([r[2] for r in rows], pa.int64()), "sessionid": [r[0] for r in rows],
                        "channel": ["Organic"] * len(rows)})
    return pa.concat_tables([sessions, extra_s]), pa.concat_tables([channels, extra_c])


def builds_of(client: WarehouseClient, table: str = "analytics.mau_summary") -> list[tuple]:
    return client.execute("SELECT run_date, mode, window_start, status FROM analytics.elt_builds "
                          "WHERE table_name = %(t)s ORDER BY created_at", {"t": table})


def test_incremental_equals_full_after_late_data_inside_the_lookback(warehouse, tmp_path, caplog) -> None:
    raw = seed_raw(warehouse, tmp_path)
    first = dt.date(2026, 6, 15)
    assert build(MauSummary(date=first)).scheduling_succeeded  # never published: full
    # late sessions of new users: two in May (inside the lookback of June 30), one in March (outside it)
    late = [("late1", dt.datetime(2026, 5, 20, 8), 990001), ("late2", dt.datetime(2026, 5, 3, 9), 990002),
            ("late3", dt.datetime(2026, 3, 9, 10), 990003)]
    add_sessions(warehouse, late)
    with caplog.at_level(logging.INFO, logger="tasks.elt.steps"):
        assert build(MauSummary(date=DAY)).scheduling_succeeded
    assert "analytics.mau_summary: incremental build: partitions from 2026-05 on" in caplog.text
    assert builds_of(warehouse) == [(first, "full", dt.date(1900, 1, 1), "published"),
                                    (DAY, "incremental", dt.date(2026, 5, 1), "published")]
    full = expected_mau(*with_rows(raw, late), DAY)
    incremental = published(warehouse)
    before_march = expected_mau(*with_rows(raw, late[:2]), DAY)
    assert incremental == before_march  # May counted; March is outside the lookback
    assert incremental["2026-05"] == expected_mau(*raw, DAY)["2026-05"] + 2
    assert {m: v for m, v in incremental.items() if m != "2026-03"} == {m: v for m, v in full.items() if m != "2026-03"}

    # --full-refresh on the day already published: a full build, March counted too; then row for row the same
    assert build(MauSummary(date=DAY, full_refresh=True)).scheduling_succeeded
    assert published(warehouse) == full
    assert builds_of(warehouse)[-1] == (DAY, "full", dt.date(1900, 1, 1), "published")
    again = build(MauSummary(date=DAY, full_refresh=True))  # the day's build is a full one now: done
    assert "ran successfully" not in again.summary_text and len(builds_of(warehouse)) == 3
    # the next day's incremental build equals a full build of the same data, row for row
    nxt = DAY + dt.timedelta(days=1)
    assert build(MauSummary(date=nxt)).scheduling_succeeded
    assert builds_of(warehouse)[-1][:2] == (nxt, "incremental")
    assert sorted(warehouse.execute("SELECT month, mau FROM analytics.mau_summary")) == sorted(
        expected_mau(*with_rows(raw, late), nxt).items())


def test_a_schema_change_forces_a_full_build(warehouse, tmp_path, luigi_cfg, caplog) -> None:
    raw = seed_raw(warehouse, tmp_path)
    use_specs(tmp_path, luigi_cfg, MAU, {})
    assert build(MauSummary(date=dt.date(2026, 5, 31))).scheduling_succeeded
    changed = MAU_SQL.read_text().replace("COUNT(DISTINCT u.userid) AS mau",
                                          "COUNT(DISTINCT u.userid) AS mau, COUNT(*) AS sessions")
    use_specs(tmp_path, luigi_cfg, MAU.replace(str(MAU_SQL), "sql/mau2.sql"), {"mau2.sql": changed})
    with caplog.at_level(logging.INFO, logger="tasks.elt.steps"):
        assert build(MauSummary(date=DAY)).scheduling_succeeded
    assert "analytics.mau_summary: full build: the published table's columns ['month', 'mau'] differ from the " \
           "SELECT's ['month', 'mau', 'sessions']" in caplog.text
    assert [b[1] for b in builds_of(warehouse)] == ["full", "full"]
    rows = {m: (int(a), int(s)) for m, a, s in warehouse.execute("SELECT month, mau, sessions FROM "
                                                                 "analytics.mau_summary")}
    assert {m: a for m, (a, _) in rows.items()} == expected_mau(*raw, DAY)
    assert sum(s for _, s in rows.values()) == raw[0].num_rows  # every session up to June 30, all months


def epoch(day: dt.date) -> int:
    return calendar.timegm(day.timetuple())


def test_range_daily_runs_exactly_the_missing_days(warehouse, tmp_path, subprocess_env) -> None:
    seed_raw(warehouse, tmp_path)
    days = [dt.date(2026, 6, 26) + dt.timedelta(days=i) for i in range(5)]
    assert build(BuildAllTables(date=days[1]), BuildAllTables(date=days[3])).scheduling_succeeded
    assert BuildAllTables.bulk_complete(days) == [days[1], days[3]]
    before = warehouse.execute("SELECT build_id FROM analytics.elt_builds")
    assert len(before) == 6  # two days, three tables
    cmd = [sys.executable, "-m", "luigi", "--module", "tasks", "RangeDaily", "--of", "BuildAllTables",
           "--start", days[0].isoformat(), "--stop", (days[-1] + dt.timedelta(days=1)).isoformat(),
           "--days-back", "400", "--now", str(epoch(dt.date(2026, 7, 2))), "--local-scheduler"]
    done = subprocess.run(cmd, env=subprocess_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = dict(warehouse.execute("SELECT run_date, COUNT(*) FROM analytics.elt_builds GROUP BY run_date"))
    assert counts == dict.fromkeys(days, 3)  # the three missing days built once each, the two done ones untouched
    assert BuildAllTables.bulk_complete(days) == days
    assert MauSummary.bulk_complete(days) == days
    assert RunAll.bulk_complete(days) == []  # the tables are done, the day's sends are not
    # a second range run finds nothing missing and builds nothing
    again = subprocess.run(cmd, env=subprocess_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(warehouse.execute("SELECT build_id FROM analytics.elt_builds")) == 15
