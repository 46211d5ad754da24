"""The ELT on the real embedded warehouse: values, idempotence, validation failures, ordering, workers."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import luigi
import pytest

from tasks.elt import steps
from tasks.elt.builds import BuildsTable
from tasks.elt.tasks import MauSummary, PublishTable, StageTable, spec_for
from tasks.errors import DataValidationError
from tasks.warehouse.client import WarehouseClient
from tests.warehouse_fixtures import expected_mau, published, seed_raw

DAY = dt.date(2026, 6, 30)


def build(*tasks: luigi.Task, workers: int = 1) -> luigi.execution_summary.LuigiRunResult:
    return luigi.build(list(tasks), local_scheduler=True, workers=workers, detailed_summary=True)


def marker_rows(client: WarehouseClient) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in client.execute("SELECT update_id, build_id, inserted FROM analytics.table_updates")}


def build_rows(client: WarehouseClient) -> list[tuple]:
    return client.execute("SELECT build_id, status, row_count, staging_table, published_at, dropped_at "
                          "FROM analytics.elt_builds ORDER BY created_at")


def test_mau_equals_independent_computation(warehouse: WarehouseClient, tmp_path: Path) -> None:
    raw = seed_raw(warehouse, tmp_path, sessions=20_000)
    result = build(MauSummary(date=DAY))
    assert result.scheduling_succeeded, result.summary_text
    got = published(warehouse)
    want = expected_mau(*raw, DAY)
    assert len(want) == 18  # 2025-01 .. 2026-06
    assert got == want


def test_run_date_bounds_the_months(warehouse: WarehouseClient, tmp_path: Path) -> None:
    raw = seed_raw(warehouse, tmp_path, sessions=5_000)
    day = dt.date(2025, 3, 14)
    assert build(MauSummary(date=day)).scheduling_succeeded
    assert published(warehouse) == expected_mau(*raw, day)
    assert sorted(published(warehouse)) == ["2025-01", "2025-02", "2025-03"]


def test_rerun_is_a_noop(warehouse: WarehouseClient, tmp_path: Path) -> None:
    seed_raw(warehouse, tmp_path)
    assert build(MauSummary(date=DAY)).scheduling_succeeded
    before = marker_rows(warehouse)
    builds_before = build_rows(warehouse)
    assert [b[1] for b in builds_before] == ["published"]
    second = build(MauSummary(date=DAY))
    assert second.scheduling_succeeded
    assert second.status == luigi.execution_summary.LuigiStatusCode.SUCCESS
    assert "complete ones were encountered" in second.summary_text
    assert "ran successfully" not in second.summary_text
    assert marker_rows(warehouse) == before
    assert build_rows(warehouse) == builds_before


def test_empty_raw_data_fails_and_keeps_the_published_table(warehouse: WarehouseClient, tmp_path: Path) -> None:
    raw = seed_raw(warehouse, tmp_path)
    assert build(MauSummary(date=DAY)).scheduling_succeeded
    good = published(warehouse)
    warehouse.execute("DELETE FROM raw_data.session_timestamp")
    next_day = DAY + dt.timedelta(days=1)
    # in full (an incremental build keeps the months before its window, so it would not see them gone)
    result = build(MauSummary(date=next_day, full_refresh=True))
    assert not result.scheduling_succeeded
    with pytest.raises(DataValidationError) as err:
        StageTable(date=next_day, table="analytics.mau_summary", full_refresh=True).run()
    assert [f.name for f in err.value.failures] == ["not_empty", "row_count_drop", "row_count_anomaly"]
    assert "0 rows" in str(err.value)
    assert published(warehouse) == good == expected_mau(*raw, DAY)
    assert f"publish:analytics.mau_summary:{next_day}" not in marker_rows(warehouse)


def test_sudden_drop_of_rows_fails(warehouse: WarehouseClient, tmp_path: Path) -> None:
    seed_raw(warehouse, tmp_path)
    assert build(MauSummary(date=DAY)).scheduling_succeeded
    good = published(warehouse)
    early = dt.date(2025, 2, 10)  # 2 months instead of 18: a 89% drop
    with pytest.raises(DataValidationError) as err:
        StageTable(date=early, table="analytics.mau_summary").run()
    drop, anomaly = err.value.failures
    assert drop.name == "row_count_drop"
    assert "2 rows staged vs 18 published" in drop.detail
    assert anomaly.name == "row_count_anomaly"
    assert anomaly.detail == "2 rows vs median 18 of the last 1 validated build(s) (x0.11, allowed x0.33 to x3)"
    assert published(warehouse) == good


def write_specs(tmp_path: Path, luigi_cfg, entries: str, sql: dict[str, str]) -> None:
    (tmp_path / "sql").mkdir(exist_ok=True)
    for name, text in sql.items():
        (tmp_path / "sql" / name).write_text(text)
    (tmp_path / "tables.toml").write_text(entries)
    luigi_cfg.set("elt", "table_specs", tmp_path / "tables.toml")


def test_duplicate_and_null_keys_fail_naming_every_check(warehouse, tmp_path, luigi_cfg) -> None:
    seed_raw(warehouse, tmp_path)
    write_specs(
        tmp_path,
        luigi_cfg,
        """
[[table]]
name = "analytics.channel_days"
primary_key = ["channel"]
sql = "sql/channel_days.sql"
[table.checks]
not_null = ["sessions"]
""",
        # one row per (channel, month) keyed on channel alone: duplicates by construction, plus a NULL key
        {
            "channel_days.sql": """
SELECT u.channel AS channel, COUNT(*) AS sessions
FROM raw_data.user_session_channel u JOIN raw_data.session_timestamp s ON s.sessionid = u.sessionid
GROUP BY u.channel, TO_VARCHAR(s.ts::TIMESTAMP_NTZ, 'YYYY-MM')
UNION ALL SELECT NULL, 1
"""
        },
    )
    assert not build(PublishTable(date=DAY, table="analytics.channel_days")).scheduling_succeeded
    with pytest.raises(DataValidationError) as err:
        StageTable(date=DAY, table="analytics.channel_days").run()
    names = {f.name: f.detail for f in err.value.failures}
    assert set(names) == {"primary_key_unique", "not_null"}
    assert names["primary_key_unique"].startswith("6 value(s) of (channel)")
    assert names["not_null"].startswith("1 row(s)")
    assert not steps.table_exists(warehouse, "analytics.channel_days")


TWO_TABLES = """
[[table]]
name = "analytics.mau_summary"
primary_key = ["month"]
sql = "{mau}"

[[table]]
name = "analytics.mau_growth"
primary_key = ["month"]
sql = "sql/mau_growth.sql"
"""


def test_tables_build_in_listed_order_with_two_workers(warehouse, tmp_path, luigi_cfg) -> None:
    raw = seed_raw(warehouse, tmp_path)
    mau_sql = Path(__file__).resolve().parents[2] / "config" / "sql" / "mau_summary.sql"
    write_specs(
        tmp_path,
        luigi_cfg,
        TWO_TABLES.format(mau=mau_sql),
        {
            "mau_growth.sql": """
SELECT month, mau - LAG(mau) OVER (ORDER BY month) AS growth FROM analytics.mau_summary
"""
        },
    )
    result = build(PublishTable(date=DAY, table="analytics.mau_growth"), workers=2)
    assert result.scheduling_succeeded, result.summary_text
    want = expected_mau(*raw, DAY)
    growth = dict(warehouse.execute("SELECT month, growth FROM analytics.mau_growth"))
    months = sorted(want)
    assert growth[months[0]] is None
    assert all(growth[m] == want[m] - want[p] for p, m in itertools.pairwise(months))
    markers = marker_rows(warehouse)
    assert markers[f"publish:analytics.mau_summary:{DAY}"][1] < markers[f"stage:analytics.mau_growth:{DAY}"][1]


def test_two_days_staged_before_either_publishes_both_converge(warehouse: WarehouseClient, tmp_path: Path) -> None:
    """Day A and day B are staged (each into its own table) before either publishes: each publishes
    its own validated build, without staging again."""
    raw = seed_raw(warehouse, tmp_path)
    day_a, day_b = dt.date(2026, 5, 31), DAY
    StageTable(date=day_a, table="analytics.mau_summary").run()
    StageTable(date=day_b, table="analytics.mau_summary").run()
    staged_a = marker_rows(warehouse)[f"stage:analytics.mau_summary:{day_a}"][0]
    PublishTable(date=day_a, table="analytics.mau_summary").run()
    assert published(warehouse) == expected_mau(*raw, day_a)
    assert marker_rows(warehouse)[f"stage:analytics.mau_summary:{day_a}"][0] == staged_a
    assert build(PublishTable(date=day_b, table="analytics.mau_summary")).scheduling_succeeded
    assert published(warehouse) == expected_mau(*raw, day_b)
    markers = marker_rows(warehouse)
    for day in (day_a, day_b):
        assert markers[f"publish:analytics.mau_summary:{day}"][0] == markers[f"stage:analytics.mau_summary:{day}"][0]
    assert [(b[0], b[1]) for b in build_rows(warehouse)] == [
        (markers[f"stage:analytics.mau_summary:{day_a}"][0], "published"),
        (markers[f"stage:analytics.mau_summary:{day_b}"][0], "published"),
    ]


def test_an_older_build_is_never_published_over_a_newer_one(warehouse: WarehouseClient, tmp_path: Path) -> None:
    """A backfill of an earlier day after a later one (or the same day's build staged earlier by a run that was
    slower to publish) put an older table back over the newer one, and the later day still counted as done."""
    raw = seed_raw(warehouse, tmp_path)
    later, earlier = DAY, dt.date(2026, 5, 31)
    assert build(MauSummary(date=later)).scheduling_succeeded
    assert build(MauSummary(date=earlier)).scheduling_succeeded  # the backfill: checked, never published
    assert published(warehouse) == expected_mau(*raw, later)
    statuses = {run_date: status for run_date, status, *_ in warehouse.execute(
        "SELECT run_date, status FROM analytics.elt_builds")}
    assert statuses == {later: "published", earlier: "superseded"}
    ((dropped,),) = warehouse.execute("SELECT dropped_at IS NOT NULL FROM analytics.elt_builds "
                                      "WHERE status = 'superseded'")
    assert dropped, "its staging table goes at once"
    assert PublishTable(date=earlier, table="analytics.mau_summary").complete()
    assert StageTable(date=earlier, table="analytics.mau_summary").complete(), "nothing left to stage again"

    # the same day: build a staged, then build b staged and published; a's publish comes last and is superseded
    StageTable(date=later, table="analytics.mau_summary").run()
    first = marker_rows(warehouse)[f"stage:analytics.mau_summary:{later}"][0]
    StageTable(date=later, table="analytics.mau_summary").run()
    second = marker_rows(warehouse)[f"stage:analytics.mau_summary:{later}"][0]
    spec, builds = spec_for("analytics.mau_summary"), BuildsTable(warehouse, "analytics.elt_builds")
    assert steps.publish(warehouse, spec, second, builds) == "published"
    assert steps.publish(warehouse, spec, first, builds).startswith("superseded")
    status = dict(warehouse.execute("SELECT build_id, status FROM analytics.elt_builds"))
    assert (status[first], status[second]) == ("superseded", "published")


def test_cleanup_drops_only_the_staging_tables_the_spec_names(warehouse: WarehouseClient, tmp_path: Path) -> None:
    """The builds table is one analysts can write to: a row naming another table (here a raw table) was
    dropped by the next publish's cleanup."""
    seed_raw(warehouse, tmp_path)
    assert build(MauSummary(date=dt.date(2026, 5, 31))).scheduling_succeeded
    warehouse.execute("INSERT INTO analytics.elt_builds (table_name, build_id, run_date, staging_table, status, "
                      "created_at) VALUES ('analytics.mau_summary', '2020-01-01/deadbeef0000', '2020-01-01', "
                      "'raw_data.session_timestamp', 'failed', '2020-01-01 00:00:00')")
    assert build(MauSummary(date=DAY)).scheduling_succeeded
    assert steps.table_exists(warehouse, "raw_data.session_timestamp")
