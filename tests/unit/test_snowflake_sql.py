"""Every statement the Snowflake backend can send parses with sqlglot's `snowflake` dialect.

fakesnow cannot run GRANT, SWAP WITH, CLONE or ALTER SESSION SET QUERY_TAG (fakesnow 0.12.1 answers
them with parser errors), so the
Snowflake-only statements are checked here: every packaged SQL file rendered with real
identifiers and bound as the connector binds parameters, and every statement the Snowflake
dialect's own methods send, recorded on the recording connection without a backend. The
pipeline's full sequence is recorded and parsed in tests/tasks/test_snowflake_contract.py.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from string import Template

import pytest
import sqlglot
from sqlglot import exp

from tasks.elt.specs import parse_specs
from tasks.elt.steps import count_measures
from tasks.warehouse.client import WarehouseClient, query_tag_json
from tasks.warehouse.dialect import SnowflakeDialect
from tasks.warehouse.sql import SQL_DIR, render, string_literal
from tests.fakes.recording import RecordingConnection, bind, recorded, strip_comments

REPO = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 6, 30)
FULL_SPEC = """
[[table]]
name = "analytics.channel_sessions"
primary_key = ["channel", "month"]
sql = "x.sql"
[table.checks]
not_null = ["sessions"]
accepted_values = { channel = ["organic", "paid", "it's"], tier = [1, 2] }
expressions = ["sessions > 0", { sql = "sessions <= %(cap)s", params = { cap = 1000000 } },
               "month <= TO_VARCHAR(%(run_date)s::DATE, 'YYYY-MM')"]
"""
# identifiers per ${placeholder} of the packaged SQL files (a new placeholder must be added here)
IDENTIFIERS = {
    "table": "analytics.mau_summary",
    "staging": "analytics.temp_mau_summary__20260630_0a1b2c3d4e5f",
    "schema": "raw_data",
    "table_name": "session_timestamp",
    "source": "raw_data.session_timestamp",
    "column": "sessionid",
    "to_table": "raw_data.session_timestamp",
    "to_column": "sessionid",
    "type": "TIMESTAMP_NTZ",
    "builds": "analytics.elt_builds",
    "marker": "analytics.table_updates",
    "key_columns": "channel, month",
    "key": "month",
    "columns": "month, mau",
    "privilege": "SELECT",
    "role": "ANALYST",
    "limit": "7",
    "file_url": string_literal("file:///tmp/it's here/session_timestamp.parquet"),
    "file_name": string_literal("analytics__campaign_sends-0a1b2c3d4e5f.parquet"),
}
# values per %(parameter)s (a new parameter must be added here)
PARAMS = {
    "run_date": "2026-06-30", "build_id": "2026-06-30/0a1b2c3d4e5f", "table_name": "analytics.mau_summary",
    "staging_table": "analytics.temp_mau_summary__20260630_0a1b2c3d4e5f", "status": "validated",
    "row_count": 18, "checks": json.dumps([{"name": "not_empty", "status": "pass"}]),
    "now": dt.datetime(2026, 7, 1, 3, 4, 5, 678901), "update_id": "stage:analytics.mau_summary:2026-06-30",
    "target_table": "analytics.mau_summary", "schema": "ANALYTICS", "staging": "TEMP_MAU_SUMMARY",
    "comment": "Monthly active users ('MAU')", "tag": query_tag_json({"task": "StageTable", "date": "2026-06-30"}),
    "path": "/tmp/x.parquet", "table": "MAU_SUMMARY",
    "campaign": "demo", "date": "2026-06-30", "channel": "sms", "segment": "all",
    "mode": "incremental", "window_start": "2026-05-01", "first_partition": "2026-05", "pattern": "publish:%",
    "after": 41, "through": 1041,
}


def assert_snowflake_sql(sql: str) -> exp.Expression:
    """`sql` is one statement that sqlglot's snowflake dialect parses into a real expression."""
    sql = strip_comments(sql)
    statements = [s for s in sqlglot.parse(sql, read="snowflake") if s is not None]
    assert len(statements) == 1, sql
    (tree,) = statements
    clone = re.fullmatch(r"(CREATE OR REPLACE TABLE \S+ CLONE \S+) COPY GRANTS", sql)
    if clone:
        # sqlglot 30.22 (pinned by fakesnow) has no grammar for COPY GRANTS after CLONE, Snowflake's
        # documented order (CREATE TABLE ... CLONE <source> [COPY GRANTS]); it falls back to a
        # Command. The statement is checked as its CLONE part plus exactly that clause.
        tree = sqlglot.parse_one(clone.group(1), read="snowflake")
        assert isinstance(tree, exp.Create) and tree.find(exp.Clone) is not None, sql
        return tree
    assert not isinstance(tree, exp.Command), f"sqlglot only saw a Command (unknown syntax): {sql}"
    return tree


def rendered_files() -> dict[str, str]:
    spec = parse_specs(FULL_SPEC, REPO)[0]
    measures, _ = count_measures(spec, DAY)
    select = (REPO / "config" / "sql" / "mau_summary.sql").read_text()
    out = {}
    for path in sorted(SQL_DIR.glob("*.sql")):
        names = {m.group("braced") for m in Template.pattern.finditer(path.read_text()) if m.group("braced")}
        missing = names - set(IDENTIFIERS) - {"select", "measures"}
        assert not missing, f"{path.name}: add sample identifiers for {missing}"
        out[path.stem] = render(path.stem, select=select, measures=measures, **IDENTIFIERS)
    return out


def bound(sql: str, extra: dict[str, object] | None = None) -> str:
    names = set(re.findall(r"%\((\w+)\)s", sql))
    values = {**PARAMS, **(extra or {})}
    missing = names - set(values)
    assert not missing, f"add sample values for {missing}"
    return bind(sql, {k: values[k] for k in names}) if names else sql


def test_every_packaged_statement_parses_as_snowflake() -> None:
    files = rendered_files()
    assert len(files) >= 25
    spec = parse_specs(FULL_SPEC, REPO)[0]
    _, measure_params = count_measures(spec, DAY)
    for name, sql in files.items():
        try:
            assert_snowflake_sql(bound(sql, measure_params))
        except Exception as exc:
            raise AssertionError(f"{name}.sql does not parse as Snowflake SQL") from exc


def test_the_bound_values_are_quoted_not_spliced() -> None:
    files = rendered_files()
    comment = strip_comments(bound(files["table_comment"]))
    assert comment == "COMMENT ON TABLE analytics.mau_summary IS 'Monthly active users (\\'MAU\\')'"
    put = strip_comments(files["put_table_stage"])
    assert put == ("PUT 'file:///tmp/it\\'s here/session_timestamp.parquet' @raw_data.%session_timestamp "
                   "OVERWRITE = TRUE")
    tree = assert_snowflake_sql(put)
    assert isinstance(tree, exp.Put)


def test_the_snowflake_dialect_sends_parseable_statements(tmp_path: Path) -> None:
    record = tmp_path / "statements.sql"
    client = WarehouseClient(RecordingConnection(None, record), SnowflakeDialect())
    dialect = client.dialect
    dialect.publish(client, "analytics.mau_summary", "analytics.temp_mau_summary__20260630_0a1b2c3d4e5f")
    dialect.clone(client, "analytics.temp_mau_summary__20260630_0a1b2c3d4e5f", "analytics.mau_summary")
    dialect.grant(client, "analytics.mau_summary", {"SELECT": ["ANALYST", "BI_TOOL"], "INSERT": ["LOADER"]})
    with client.query_tag(task="PublishTable", table="analytics.mau_summary", date="2026-06-30"):
        client.run("row_count", table="analytics.mau_summary")
    dialect.load_parquet(client, "raw_data.session_timestamp", Path("/tmp/it's here/s.parquet"))
    dialect.replace_rows(client, "analytics.campaign_sends", Path("/tmp/load/cs-0a1b.parquet"), "campaign_sends_delete",
                         {"campaign": "demo", "date": "2026-06-30", "channel": "sms", "segment": "all"})
    statements = recorded(record)
    assert statements == [
        "CREATE OR REPLACE TABLE analytics.mau_summary CLONE analytics.temp_mau_summary__20260630_0a1b2c3d4e5f "
        "COPY GRANTS",
        # an incremental build starts as a zero-copy clone of the published table
        "CREATE TABLE analytics.temp_mau_summary__20260630_0a1b2c3d4e5f CLONE analytics.mau_summary",
        "GRANT SELECT ON TABLE analytics.mau_summary TO ROLE ANALYST",
        "GRANT SELECT ON TABLE analytics.mau_summary TO ROLE BI_TOOL",
        "GRANT INSERT ON TABLE analytics.mau_summary TO ROLE LOADER",
        "ALTER SESSION SET QUERY_TAG = '{\"project\":\"mau-campaign-tasks\",\"task\":\"PublishTable\","
        "\"table\":\"analytics.mau_summary\",\"date\":\"2026-06-30\"}'",
        "SELECT COUNT(*) FROM analytics.mau_summary",
        "ALTER SESSION SET QUERY_TAG = '{\"project\":\"mau-campaign-tasks\"}'",
        "PUT 'file:///tmp/it\\'s here/s.parquet' @raw_data.%session_timestamp OVERWRITE = TRUE",
        "COPY INTO raw_data.session_timestamp FROM @raw_data.%session_timestamp FILE_FORMAT = (TYPE = PARQUET) "
        "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE",
        # a results load: PUT first (no DML), then the delete and the COPY of exactly that file in one transaction
        "PUT 'file:///tmp/load/cs-0a1b.parquet' @analytics.%campaign_sends OVERWRITE = TRUE AUTO_COMPRESS = FALSE",
        "BEGIN",
        "DELETE FROM analytics.campaign_sends WHERE campaign = 'demo' AND date = '2026-06-30' AND channel = 'sms' "
        "AND segment = 'all'",
        "COPY INTO analytics.campaign_sends FROM @analytics.%campaign_sends FILES = ('cs-0a1b.parquet') "
        "FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE",
        "COMMIT",
    ]
    kinds = [type(assert_snowflake_sql(s)).__name__ for s in statements]
    assert kinds == ["Create", "Create", "Grant", "Grant", "Grant", "Alter", "Select", "Alter", "Put", "Copy",
                     "Put", "Transaction", "Delete", "Copy", "Commit"]


def test_the_tag_is_sent_only_when_it_changes(tmp_path: Path) -> None:
    record = tmp_path / "statements.sql"
    client = WarehouseClient(RecordingConnection(None, record), SnowflakeDialect())
    client.run("current_role")  # the login tag: nothing sent
    with client.query_tag(task="StageTable"):
        client.run("current_role")
        client.run("current_role")
    client.run("current_role")  # back to the login tag: sent once more
    tags = [s for s in recorded(record) if s.startswith("ALTER SESSION")]
    assert [json.loads(t.split("= ", 1)[1].strip("'")) for t in tags] == [
        {"project": "mau-campaign-tasks", "task": "StageTable"},
        {"project": "mau-campaign-tasks"},
    ]
    assert len(recorded(record)) == 6


@pytest.mark.parametrize("bad", ["SELEC 1", "GRANT SELECT ON TABLE t TO", "CREATE OR REPLACE TABLE t CLONE"])
def test_the_parser_check_rejects_broken_sql(bad: str) -> None:
    with pytest.raises((AssertionError, sqlglot.errors.ParseError)):
        assert_snowflake_sql(bad)
