"""The statements the Snowflake backend sends, in order: stage -> check -> publish, and each crash
point followed by a re-run, recorded on the recording connection (tests/fakes/recording.py:
the one stand-in for Snowflake; the data behind it is the embedded warehouse).

Every recorded statement also parses with sqlglot's `snowflake` dialect.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import luigi
import pytest

from tasks.elt.tasks import PublishTable
from tasks.warehouse.client import WarehouseClient
from tests.fakes.recording import install, recorded
from tests.unit.test_snowflake_sql import assert_snowflake_sql
from tests.warehouse_fixtures import seed_raw

DAY = dt.date(2026, 6, 30)
TABLE = "analytics.channel_sessions"
SPEC = """
[[table]]
name = "analytics.channel_sessions"
description = "Sessions per channel"
primary_key = ["channel"]
sql = "sql/channel_sessions.sql"
grants = { select = ["ANALYST", "BI_TOOL"] }
[table.checks]
not_null = ["sessions"]
accepted_values = { channel = ["Google", "Facebook", "Instagram", "Youtube", "Naver", "Organic"] }
relationships = [{ column = "first_session", to = "raw_data.session_timestamp", to_column = "sessionid" }]
expressions = ["sessions > 0", { sql = "sessions <= %(cap)s", params = { cap = 1000000 } }]
freshness = { source = "raw_data.session_timestamp", column = "ts", max_age_hours = 36 }
row_count_anomaly = { history = 7, max_change_ratio = 3.0 }
"""
SELECT = ("SELECT channel, COUNT(*) AS sessions, MIN(sessionid) AS first_session "
          "FROM raw_data.user_session_channel GROUP BY channel")



def normalise(statements: list[str]) -> list[str]:
    """Build ids, staging-table tokens, timestamps and the checks JSON replaced by placeholders."""
    out = []
    for sql in statements:
        sql = re.sub(r"\d{4}-\d{2}-\d{2}/[0-9a-f]{12}", "<build>", sql)
        sql = re.sub(r"__\d{8}_[0-9a-f]{12}", "__<token>", sql)
        sql = re.sub(r"'\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?'(::TIMESTAMP_NTZ)?", "<now>", sql)
        sql = re.sub(r"checks = '(?:[^'\\]|\\.)*'", "checks = <checks>", sql)
        out.append(sql)
    return out


def tag(task: str | None = None) -> str:
    fields = f',"task":"{task}","table":"{TABLE}","date":"{DAY}","build_id":"<build>"' if task else ""
    return f"""ALTER SESSION SET QUERY_TAG = '{{"project":"mau-campaign-tasks"{fields}}}'"""


def marker(step: str) -> str:
    return f"SELECT build_id FROM analytics.table_updates WHERE update_id = '{step}:{TABLE}:{DAY}'"


def merge(step: str) -> str:
    return (f"MERGE INTO analytics.table_updates AS m USING (SELECT '{step}:{TABLE}:{DAY}' AS update_id, '{TABLE}' "
            "AS target_table, '<build>' AS build_id) AS s ON m.update_id = s.update_id WHEN MATCHED THEN UPDATE SET "
            "build_id = s.build_id, target_table = s.target_table, inserted = CURRENT_TIMESTAMP() WHEN NOT MATCHED "
            "THEN INSERT (update_id, target_table, build_id) VALUES (s.update_id, s.target_table, s.build_id)")


STAGING = "analytics.temp_channel_sessions__<token>"
BUILD_COLUMNS = ("SELECT table_name, build_id, staging_table, status, created_at, published_at, "
                 "dropped_at IS NOT NULL, mode")
LOOKUP = f"{BUILD_COLUMNS} FROM analytics.elt_builds WHERE build_id = '<build>'"
SCHEMA = "CREATE SCHEMA IF NOT EXISTS analytics"
CREATE_MARKER = (
    "CREATE TABLE IF NOT EXISTS analytics.table_updates ( update_id VARCHAR NOT NULL, target_table VARCHAR NOT NULL, "
    "build_id VARCHAR, inserted TIMESTAMP_NTZ DEFAULT CURRENT_TIMESTAMP() )"
)
CREATE_BUILDS = (
    "CREATE TABLE IF NOT EXISTS analytics.elt_builds ( table_name VARCHAR NOT NULL, build_id VARCHAR NOT NULL, "
    "run_date DATE, staging_table VARCHAR NOT NULL, status VARCHAR NOT NULL, row_count INTEGER, checks VARCHAR, "
    "created_at TIMESTAMP_NTZ, validated_at TIMESTAMP_NTZ, published_at TIMESTAMP_NTZ, dropped_at TIMESTAMP_NTZ, "
    "mode VARCHAR, window_start DATE )"
)
# a builds table from before incremental builds gets the two columns (idempotent; once per connection)
ADD_COLUMNS = ["ALTER TABLE analytics.elt_builds ADD COLUMN IF NOT EXISTS mode VARCHAR",
               "ALTER TABLE analytics.elt_builds ADD COLUMN IF NOT EXISTS window_start DATE"]
BUILDS_TABLE = [CREATE_BUILDS, *ADD_COLUMNS]
STAGE_BODY = [
    "INSERT INTO analytics.elt_builds (table_name, build_id, run_date, staging_table, status, created_at, mode, "
    f"window_start) VALUES ('{TABLE}', '<build>', '{DAY}', '{STAGING}', 'staging', <now>, 'full', NULL)",
    "SELECT MAX(ts), COUNT(ts) FROM raw_data.session_timestamp",
    f"CREATE TABLE {STAGING} AS {SELECT}",
    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN channel IS NULL OR sessions IS NULL THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN channel IS NOT NULL AND channel NOT IN ('Google', 'Facebook', 'Instagram', 'Youtube', "
    "'Naver', 'Organic') THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN NOT COALESCE((sessions > 0), FALSE) THEN 1 "
    "ELSE 0 END), 0), COALESCE(SUM(CASE WHEN NOT COALESCE((sessions <= 1000000), FALSE) THEN 1 ELSE 0 END), 0) "
    f"FROM {STAGING}",
    f"SELECT COUNT(*) AS duplicate_keys FROM (SELECT channel FROM {STAGING} GROUP BY channel HAVING COUNT(*) > 1) AS d",
    f"SELECT COUNT(*) FROM {STAGING} AS s WHERE s.first_session IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
    "raw_data.session_timestamp AS r WHERE r.sessionid = s.first_session)",
    f"SELECT row_count FROM analytics.elt_builds WHERE table_name = '{TABLE}' AND status IN ('validated', 'published') "
    "AND build_id <> '<build>' ORDER BY validated_at DESC LIMIT 7",
    f"SELECT COUNT(*) FROM {TABLE}",
    "UPDATE analytics.elt_builds SET status = 'validated', row_count = 6, checks = <checks>, validated_at = <now> "
    "WHERE build_id = '<build>'",
    merge("stage"),
]
# no newer build of the table is published (else this one is superseded, never cloned over it)
NEWER_PUBLISHED = (
    "SELECT COUNT(*) FROM analytics.elt_builds AS newer, analytics.elt_builds AS this WHERE this.build_id = "
    "'<build>' AND newer.table_name = this.table_name AND newer.status = 'published' AND newer.build_id <> "
    "this.build_id AND (newer.run_date > this.run_date OR (newer.run_date = this.run_date AND newer.created_at > "
    "this.created_at))"
)
PUBLISH_BODY = [
    NEWER_PUBLISHED,
    f"CREATE OR REPLACE TABLE {TABLE} CLONE {STAGING} COPY GRANTS",
    f"COMMENT ON TABLE {TABLE} IS 'Sessions per channel'",
    f"GRANT SELECT ON TABLE {TABLE} TO ROLE ANALYST",
    f"GRANT SELECT ON TABLE {TABLE} TO ROLE BI_TOOL",
    "UPDATE analytics.elt_builds SET status = 'published', published_at = <now> WHERE build_id = '<build>'",
]
AFTER_PUBLISH = [merge("publish"), f"{BUILD_COLUMNS} FROM analytics.elt_builds WHERE table_name = '{TABLE}' "
                 "AND dropped_at IS NULL"]
# a run that finds the stage marker's build validated: scheduling check, run-time check, then the publish
# (on a fresh connection the first build lookup makes sure the builds table has its columns first)
PUBLISH_VALIDATED = [marker("publish"), marker("stage"), SCHEMA, *BUILDS_TABLE, LOOKUP, marker("stage"), LOOKUP,
                     marker("stage"), tag("PublishTable"), LOOKUP]
FIRST_RUN = [
    marker("publish"), SCHEMA, CREATE_MARKER, marker("stage"), tag("StageTable"), *BUILDS_TABLE, *STAGE_BODY,
    tag(), marker("stage"), LOOKUP, marker("stage"), tag("PublishTable"), LOOKUP, *PUBLISH_BODY, *AFTER_PUBLISH,
]
# the re-runs run on a fresh connection, where each idempotent DDL runs once before its first use
STAGE_AGAIN = [
    marker("publish"), marker("stage"), tag("StageTable"), SCHEMA, *BUILDS_TABLE, *STAGE_BODY[:-1], CREATE_MARKER,
    STAGE_BODY[-1], tag(), marker("stage"), LOOKUP, marker("stage"), tag("PublishTable"), LOOKUP, *PUBLISH_BODY,
    *AFTER_PUBLISH,
]
PUBLISH_AGAIN = [*PUBLISH_VALIDATED, *PUBLISH_BODY, CREATE_MARKER, *AFTER_PUBLISH]
RERUNS = {  # crash point: (statements the killed run sent, the re-run's statements)
    "after_ctas": (FIRST_RUN[:FIRST_RUN.index(STAGE_BODY[2]) + 1], STAGE_AGAIN),
    "after_validation": (FIRST_RUN[:FIRST_RUN.index(STAGE_BODY[-2]) + 1], STAGE_AGAIN),
    "after_stage_marker": (FIRST_RUN[:FIRST_RUN.index(STAGE_BODY[-1]) + 1], PUBLISH_AGAIN),
    "before_publish": (FIRST_RUN[:FIRST_RUN.index(PUBLISH_BODY[1])], PUBLISH_AGAIN),  # after the newer check
    "mid_publish": (FIRST_RUN[:FIRST_RUN.index(PUBLISH_BODY[1]) + 1], PUBLISH_AGAIN),
    # the builds table says published: never publish again, only the marker
    "after_publish": (FIRST_RUN[:FIRST_RUN.index(PUBLISH_BODY[-1]) + 1],
                      [*PUBLISH_VALIDATED, CREATE_MARKER, *AFTER_PUBLISH]),
}


@pytest.fixture
def contract(warehouse: WarehouseClient, tmp_path: Path, luigi_cfg) -> Path:
    seed_raw(warehouse, tmp_path)
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "channel_sessions.sql").write_text(SELECT + "\n")
    (tmp_path / "tables.toml").write_text(SPEC)
    luigi_cfg.set("elt", "table_specs", tmp_path / "tables.toml")
    return tmp_path / "statements.sql"


def run_recorded(path: Path) -> list[str]:
    """A luigi run of the table's PublishTable in this process; the statements it sent."""
    before = len(recorded(path))
    install(path)
    assert luigi.build([PublishTable(date=DAY, table=TABLE)], local_scheduler=True, workers=1)
    return normalise(recorded(path)[before:])


def published_rows(warehouse: WarehouseClient) -> dict[str, int]:
    return dict(warehouse.execute(f"SELECT channel, sessions FROM {TABLE}"))


def builds(warehouse: WarehouseClient) -> list[tuple]:
    return warehouse.execute("SELECT status, row_count FROM analytics.elt_builds ORDER BY created_at")


def test_stage_check_publish_sends_exactly_this(contract: Path, warehouse: WarehouseClient) -> None:
    sent = run_recorded(contract)
    assert sent == FIRST_RUN
    for sql in recorded(contract):
        assert_snowflake_sql(sql)
    want = dict(warehouse.execute("SELECT channel, COUNT(*) FROM raw_data.user_session_channel GROUP BY channel"))
    assert published_rows(warehouse) == want
    assert builds(warehouse) == [("published", 6)]
    (checks,), = warehouse.execute("SELECT checks FROM analytics.elt_builds")
    assert [(c["name"], c["status"]) for c in json.loads(checks)] == [
        ("freshness(raw_data.session_timestamp.ts)", "pass"), ("not_empty", "pass"), ("min_rows", "pass"),
        ("primary_key_unique", "pass"), ("not_null", "pass"), ("accepted_values(channel)", "pass"),
        ("relationships(first_session -> raw_data.session_timestamp.sessionid)", "pass"),
        ("expressions(sessions > 0)", "pass"), ("expressions(sessions <= %(cap)s)", "pass"),
        ("row_count_anomaly", "pass"),
    ]
    assert run_recorded(contract) == [marker("publish")]  # a finished day: one lookup, nothing else


@pytest.mark.slow
@pytest.mark.parametrize("crash_at", list(RERUNS))
def test_each_crash_point_then_a_rerun_sends_exactly_this(
    contract: Path, warehouse: WarehouseClient, subprocess_env: dict[str, str], crash_at: str
) -> None:
    env = {**subprocess_env, "TASKS_CRASH_AT": crash_at}
    cmd = [sys.executable, "-m", "tests.fakes.recording", str(contract), TABLE, DAY.isoformat()]
    crashed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    killed_run, rerun = RERUNS[crash_at]
    assert normalise(recorded(contract)) == killed_run
    assert run_recorded(contract) == rerun
    want = dict(warehouse.execute("SELECT channel, COUNT(*) FROM raw_data.user_session_channel GROUP BY channel"))
    assert published_rows(warehouse) == want
    statuses = [status for status, _ in builds(warehouse)]
    # one build published; a build killed before its stage marker stays behind, never published
    assert statuses.count("published") == 1
    assert statuses == (["staging" if crash_at == "after_ctas" else "validated", "published"]
                        if crash_at in ("after_ctas", "after_validation") else ["published"])


INC_TABLE = "analytics.channel_months"
INC_SPEC = """
[[table]]
name = "analytics.channel_months"
primary_key = ["month", "channel"]
sql = "sql/channel_months.sql"
[table.checks]
not_null = ["sessions"]
[table.incremental]
key = "month"
grain = "month"
lookback = 1
"""
INC_SELECT = ("SELECT TO_VARCHAR(s.ts::TIMESTAMP_NTZ, 'YYYY-MM') AS month, u.channel AS channel, "
              "COUNT(*) AS sessions FROM raw_data.session_timestamp AS s JOIN raw_data.user_session_channel AS u "
              "ON s.sessionid = u.sessionid WHERE s.ts >= %(window_start)s::DATE "
              "AND s.ts < DATEADD(day, 1, %(run_date)s::DATE) GROUP BY 1, 2")


def bound(select: str, window_start: str, run_date: dt.date = DAY) -> str:
    return select.replace("%(window_start)s", f"'{window_start}'").replace("%(run_date)s", f"'{run_date}'")


def test_an_incremental_build_sends_exactly_this(warehouse: WarehouseClient, tmp_path: Path, luigi_cfg) -> None:
    """Day 1 builds in full (never published); day 2 clones the published table, deletes the run date's month
    and the one before, inserts the SELECT's rows from the window's first day on, checks the whole staging
    table and publishes it as a full build is published."""
    seed_raw(warehouse, tmp_path)
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "channel_months.sql").write_text(INC_SELECT + "\n")
    (tmp_path / "tables.toml").write_text(INC_SPEC)
    luigi_cfg.set("elt", "table_specs", tmp_path / "tables.toml")
    path = tmp_path / "statements.sql"
    install(path)
    day1 = dt.date(2026, 5, 31)
    assert luigi.build([PublishTable(date=day1, table=INC_TABLE)], local_scheduler=True)
    first = normalise(recorded(path))
    assert f"CREATE TABLE analytics.temp_channel_months__<token> AS {bound(INC_SELECT, '1900-01-01', day1)}" in first
    before = len(recorded(path))
    install(path)
    assert luigi.build([PublishTable(date=DAY, table=INC_TABLE)], local_scheduler=True)
    sent = normalise(recorded(path)[before:])
    staging = "analytics.temp_channel_months__<token>"
    start = sent.index(f"SELECT * FROM {INC_TABLE} LIMIT 0")
    assert sent[start:start + 11] == [
        # the published table's columns against the SELECT's (equal: incremental)
        f"SELECT * FROM {INC_TABLE} LIMIT 0",
        f"SELECT * FROM ( {bound(INC_SELECT, DAY.isoformat())} ) AS q LIMIT 0",
        SCHEMA, *BUILDS_TABLE,  # a fresh connection
        "INSERT INTO analytics.elt_builds (table_name, build_id, run_date, staging_table, status, created_at, mode, "
        f"window_start) VALUES ('{INC_TABLE}', '<build>', '{DAY}', '{staging}', 'staging', <now>, 'incremental', "
        "'2026-05-01')",
        f"CREATE TABLE {staging} CLONE {INC_TABLE}",
        f"DELETE FROM {staging} WHERE month >= '2026-05'",
        f"INSERT INTO {staging} (month, channel, sessions) {bound(INC_SELECT, '2026-05-01')}",
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN month IS NULL OR channel IS NULL OR sessions IS NULL THEN 1 ELSE 0 "
        f"END), 0) FROM {staging}",
    ]
    assert sent.index(f"CREATE OR REPLACE TABLE {INC_TABLE} CLONE {staging} COPY GRANTS") > start + 10
    for sql in recorded(path):
        assert_snowflake_sql(sql)
    want = {(m, c): n for m, c, n in warehouse.execute(
        "SELECT TO_VARCHAR(s.ts::TIMESTAMP_NTZ, 'YYYY-MM'), u.channel, COUNT(*) FROM raw_data.session_timestamp s "
        "JOIN raw_data.user_session_channel u ON s.sessionid = u.sessionid GROUP BY 1, 2")}
    got = {(m, c): n for m, c, n in warehouse.execute(f"SELECT month, channel, sessions FROM {INC_TABLE}")}
    assert got == want
    assert warehouse.execute("SELECT run_date, mode, window_start FROM analytics.elt_builds ORDER BY created_at") == [
        (day1, "full", dt.date(1900, 1, 1)), (DAY, "incremental", dt.date(2026, 5, 1))]
