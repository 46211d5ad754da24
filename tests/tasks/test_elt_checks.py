"""The data checks of tables.toml on the real embedded warehouse: each kind reported by name with its
numbers (computed here independently with pandas), a failure blocks the publish and keeps the
published table, severity warn logs and alerts and publishes, the builds table keeps the history."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import luigi
import pandas as pd
import pytest

from tasks.elt.tasks import PublishTable, StageTable
from tasks.errors import DataValidationError
from tasks.warehouse.client import WarehouseClient
from tests.tasks.test_elt import write_specs
from tests.warehouse_fixtures import seed_raw

DAY = dt.date(2026, 6, 30)
TABLE = "analytics.channel_months"
SQL = """
SELECT u.channel AS channel, TO_VARCHAR(s.ts::TIMESTAMP_NTZ, 'YYYY-MM') AS month, COUNT(*) AS sessions,
       MIN(s.sessionid) || %(suffix)s AS first_session
FROM raw_data.user_session_channel u JOIN raw_data.session_timestamp s ON s.sessionid = u.sessionid
WHERE s.ts < DATEADD(day, 1, %(run_date)s::DATE)
GROUP BY 1, 2
"""


def spec(checks: str, suffix: str = "") -> tuple[str, str]:
    return f"""
[[table]]
name = "{TABLE}"
primary_key = ["channel", "month"]
sql = "sql/channel_months.sql"
description = "Sessions per channel and month"
[table.checks]
{checks}
""", SQL.replace("%(suffix)s", f"'{suffix}'")


def use(tmp_path: Path, luigi_cfg, checks: str, suffix: str = "") -> None:
    text, sql = spec(checks, suffix)
    write_specs(tmp_path, luigi_cfg, text, {"channel_months.sql": sql})


def joined(raw, day: dt.date) -> pd.DataFrame:
    s, u = raw[0].to_pandas(), raw[1].to_pandas()
    s = s[s["ts"] < pd.Timestamp(day + dt.timedelta(days=1))]
    j = s.merge(u, on="sessionid")
    j["month"] = j["ts"].dt.strftime("%Y-%m")
    return j.groupby(["channel", "month"]).agg(sessions=("sessionid", "size")).reset_index()


def stage_error(day: dt.date = DAY) -> DataValidationError:
    with pytest.raises(DataValidationError) as err:
        StageTable(date=day, table=TABLE).run()
    return err.value


def builds(client: WarehouseClient) -> list[tuple]:
    rows = client.execute("SELECT run_date, status, row_count, checks FROM analytics.elt_builds ORDER BY created_at")
    return [(d, s, n, json.loads(c) if c else None) for d, s, n, c in rows]


def test_accepted_values_relationships_and_expressions_block_with_their_numbers(
    warehouse: WarehouseClient, tmp_path: Path, luigi_cfg
) -> None:
    raw = seed_raw(warehouse, tmp_path)
    use(tmp_path, luigi_cfg, """
accepted_values = { channel = ["Google", "Facebook", "Instagram", "Youtube", "Organic"] }
relationships = [{ column = "first_session", to = "raw_data.session_timestamp", to_column = "sessionid" }]
expressions = [{ sql = "sessions <= %(cap)s", params = { cap = 40 } },
               { sql = "month >= %(since)s", params = { since = "2025-07" } }]
""", suffix="x")
    err = stage_error()
    frame = joined(raw, DAY)
    naver = int((frame["channel"] == "Naver").sum())
    over_cap = int((frame["sessions"] > 40).sum())
    before_july = int((frame["month"] < "2025-07").sum())
    assert naver and over_cap and before_july and over_cap < len(frame)
    assert {f.name: f.detail for f in err.failures} == {
        "accepted_values(channel)": f"{naver} row(s) have a channel outside the 5 accepted value(s) "
                                    "['Google', 'Facebook', 'Instagram', 'Youtube', 'Organic']",
        "relationships(first_session -> raw_data.session_timestamp.sessionid)":
            f"{len(frame)} row(s) have a first_session not found in raw_data.session_timestamp.sessionid",
        "expressions(sessions <= %(cap)s)": f"{over_cap} of {len(frame)} row(s) do not satisfy it",
        "expressions(month >= %(since)s)": f"{before_july} of {len(frame)} row(s) do not satisfy it",
    }
    assert not warehouse.execute("SELECT * FROM information_schema.tables WHERE table_name = 'CHANNEL_MONTHS'")
    ((run_date, status, rows, checks),) = builds(warehouse)
    assert (run_date, status, rows) == (DAY, "failed", len(frame))
    assert {c["name"]: c["status"] for c in checks}["not_null"] == "pass"
    assert sorted(c["name"] for c in checks if c["status"] == "fail") == sorted(f.name for f in err.failures)


def test_a_failed_check_keeps_the_published_table(warehouse: WarehouseClient, tmp_path: Path, luigi_cfg) -> None:
    raw = seed_raw(warehouse, tmp_path)
    use(tmp_path, luigi_cfg, 'expressions = ["month <= TO_VARCHAR(%(run_date)s::DATE, \'YYYY-MM\')"]')
    assert luigi.build([PublishTable(date=DAY, table=TABLE)], local_scheduler=True)
    before = sorted(warehouse.execute(f"SELECT channel, month, sessions FROM {TABLE}"))
    assert len(before) == len(joined(raw, DAY))
    use(tmp_path, luigi_cfg, 'expressions = ["month < TO_VARCHAR(%(run_date)s::DATE, \'YYYY-MM\')"]')
    day_before = DAY - dt.timedelta(days=1)  # its June rows break the new expression
    assert not luigi.build([PublishTable(date=day_before, table=TABLE)], local_scheduler=True)
    assert sorted(warehouse.execute(f"SELECT channel, month, sessions FROM {TABLE}")) == before
    assert [b[1] for b in builds(warehouse)] == ["published", "failed"]
    (comment,), = warehouse.execute("SELECT comment FROM information_schema.tables WHERE table_name = 'CHANNEL_MONTHS'")
    assert comment == "Sessions per channel and month"


def test_freshness_fails_before_the_ctas_naming_the_newest_timestamp(
    warehouse: WarehouseClient, tmp_path: Path, luigi_cfg
) -> None:
    raw = seed_raw(warehouse, tmp_path)
    use(tmp_path, luigi_cfg, 'freshness = { source = "raw_data.session_timestamp", column = "ts", max_age_hours = 36 }')
    late = dt.date(2026, 7, 3)
    (failure,) = stage_error(late).failures
    newest = raw[0].to_pandas()["ts"].max().to_pydatetime()
    age = (dt.datetime(2026, 7, 4) - newest).total_seconds() / 3600
    assert age > 36
    assert failure.name == "freshness(raw_data.session_timestamp.ts)"
    assert failure.detail == (f"newest ts is {newest.isoformat(sep=' ')}, {age:,.1f} h before the end of the run date "
                              "2026-07-03 (allowed 36 h)")
    assert not warehouse.execute("SELECT * FROM information_schema.tables WHERE table_name LIKE 'TEMP_CHANNEL%'")
    ((_, status, rows, checks),) = builds(warehouse)
    assert (status, rows, [c["name"] for c in checks]) == ("failed", None, [failure.name])
    # the day after the newest session is fresh enough
    StageTable(date=newest.date(), table=TABLE).run()


def test_row_count_anomaly_compares_with_earlier_validated_builds(
    warehouse: WarehouseClient, tmp_path: Path, luigi_cfg
) -> None:
    raw = seed_raw(warehouse, tmp_path)
    use(tmp_path, luigi_cfg, "max_row_drop_ratio = 1.0\nrow_count_anomaly = { history = 2, max_change_ratio = 2.0 }")
    days = [dt.date(2026, 4, 30), dt.date(2026, 5, 31), DAY]
    counts = [len(joined(raw, d)) for d in days]
    for day in days:
        StageTable(date=day, table=TABLE).run()
    early = dt.date(2025, 3, 31)
    (failure,) = stage_error(early).failures
    median = (counts[1] + counts[2]) / 2  # the last 2 validated builds
    n = len(joined(raw, early))
    assert failure.name == "row_count_anomaly"
    assert failure.detail == (f"{n} rows vs median {median:g} of the last 2 validated build(s) "
                              f"(x{n / median:.2f}, allowed x0.50 to x2)")
    assert [(s, r) for _, s, r, _ in builds(warehouse)] == [*(("validated", c) for c in counts), ("failed", n)]


def test_severity_warn_logs_alerts_and_publishes(
    warehouse: WarehouseClient, tmp_path: Path, luigi_cfg, var_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = seed_raw(warehouse, tmp_path)
    use(tmp_path, luigi_cfg, 'expressions = ["sessions <= 40"]\nseverity = { expressions = "warn" }')
    with caplog.at_level(logging.WARNING):
        assert luigi.build([PublishTable(date=DAY, table=TABLE)], local_scheduler=True)
    frame = joined(raw, DAY)
    over = int((frame["sessions"] > 40).sum())
    assert over
    detail = f"expressions(sessions <= 40): {over} of {len(frame)} row(s) do not satisfy it"
    assert any(detail in r.getMessage() and "severity warn" in r.getMessage() for r in caplog.records)
    alerts = [json.loads(line) for line in (var_path / "alerts" / "alerts.jsonl").read_text().splitlines()]
    (alert,) = [a for a in alerts if "data check warning" in json.dumps(a)]
    assert detail in json.dumps(alert)
    assert len(warehouse.execute(f"SELECT * FROM {TABLE}")) == len(frame)
    ((_, status, _, checks),) = builds(warehouse)
    assert status == "published"
    assert [c["status"] for c in checks if c["kind"] == "expressions"] == ["warn"]
