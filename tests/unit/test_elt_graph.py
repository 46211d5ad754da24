"""Pure parts of the table graph and of incremental builds: tables read, cycles, windows, full or incremental."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from tasks.elt import incremental
from tasks.elt.graph import dependencies, failed_upstream, find_cycle, tables_read
from tasks.elt.incremental import FULL, INCREMENTAL, decide, partition_start, window_start
from tasks.elt.specs import Incremental, parse_specs
from tasks.errors import ConfigError


def test_ctes_are_not_tables_and_every_scope_counts() -> None:
    sql = """
WITH recent AS (SELECT * FROM raw_data.s WHERE ts >= %(window_start)s::DATE)
SELECT r.month, m.mau FROM recent AS r
JOIN analytics.mau_summary AS m ON m.month = r.month
WHERE EXISTS (SELECT 1 FROM Analytics.Channel_Mau AS c WHERE c.month = r.month)
  AND r.x NOT LIKE '100%%'
"""
    assert tables_read(sql) == {"raw_data.s", "analytics.mau_summary", "analytics.channel_mau"}


def write(tmp_path: Path, entries: dict[str, str], extra: dict[str, str] | None = None) -> list:
    (tmp_path / "sql").mkdir(exist_ok=True)
    text = ""
    for name, select in entries.items():
        (tmp_path / "sql" / f"{name}.sql").write_text(select)
        text += f'[[table]]\nname = "analytics.{name}"\nprimary_key = ["k"]\nsql = "sql/{name}.sql"\n'
        text += (extra or {}).get(name, "") + "\n"
    return parse_specs(text, tmp_path)


def test_a_spec_depends_on_the_specs_it_reads_and_on_depends_on(tmp_path: Path) -> None:
    specs = write(tmp_path, {
        "a": "SELECT k FROM raw_data.s",
        "b": "SELECT k FROM analytics.a JOIN raw_data.s USING (k)",
        "c": "SELECT k FROM analytics.v_over_b",  # a view over b: only depends_on can say
        "d": "SELECT k FROM raw_data.s",
    }, {"c": 'depends_on = ["analytics.b"]'})
    graph = dependencies(specs)
    assert graph == {"analytics.a": (), "analytics.b": ("analytics.a",), "analytics.c": ("analytics.b",),
                     "analytics.d": ()}
    assert failed_upstream(graph, "analytics.c", {"analytics.a"}) == "analytics.a"
    assert failed_upstream(graph, "analytics.d", {"analytics.a"}) is None


def test_a_cycle_is_refused_naming_its_tables(tmp_path: Path) -> None:
    specs = write(tmp_path, {
        "a": "SELECT k FROM analytics.c",
        "b": "SELECT k FROM analytics.a",
        "c": "WITH x AS (SELECT k FROM analytics.b) SELECT k FROM x",
        "d": "SELECT k FROM raw_data.s",
    })
    with pytest.raises(ConfigError, match=re.escape("cycle: analytics.a -> analytics.c -> analytics.b -> analytics.a")):
        dependencies(specs)
    assert find_cycle({"x": ("y",), "y": ()}) == []


def test_self_reference_and_unknown_depends_on_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cycle: analytics.a -> analytics.a"):
        dependencies(write(tmp_path, {"a": "SELECT k FROM analytics.a"}))
    with pytest.raises(ConfigError, match="depends_on names tables no spec builds"):
        dependencies(write(tmp_path, {"a": "SELECT 1 AS k"}, {"a": 'depends_on = ["analytics.nope"]'}))
    with pytest.raises(ConfigError, match="cannot parse"):
        dependencies(write(tmp_path, {"a": "SELECT FROM WHERE ((("}))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('key = "month"\ngrain = "week"\nlookback = 1', "grain must be one of"),
        ('key = "month"\ngrain = "month"\nlookback = -1', "lookback must be an integer"),
        ('key = "month; drop"\ngrain = "month"\nlookback = 1', "invalid SQL identifier"),
        ('key = "month"\ngrain = "month"', "exactly key, grain and lookback"),
    ],
)
def test_bad_incremental_settings_are_config_errors(tmp_path: Path, raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        write(tmp_path, {"a": "SELECT 1 AS k"}, {"a": f"[table.incremental]\n{raw}"})


def test_windows_cover_the_run_dates_partition_and_the_lookback() -> None:
    monthly = Incremental("month", "month", 1)
    assert window_start(dt.date(2026, 6, 30), monthly) == dt.date(2026, 5, 1)
    assert window_start(dt.date(2026, 1, 15), monthly) == dt.date(2025, 12, 1)
    assert window_start(dt.date(2026, 3, 1), Incremental("month", "month", 14)) == dt.date(2025, 1, 1)
    assert window_start(dt.date(2026, 3, 1), Incremental("day", "day", 2)) == dt.date(2026, 2, 27)
    assert partition_start(dt.date(2026, 6, 30), "month") == dt.date(2026, 6, 1)


COLUMNS = [("MONTH", 2), ("MAU", 0)]


def test_full_or_incremental() -> None:
    inc, day = Incremental("month", "month", 1), dt.date(2026, 6, 30)
    plan = decide(inc, day, full_refresh=False, published=COLUMNS, selected=[("month", 2), ("mau", 0)])
    assert (plan.mode, plan.window_start, plan.first_partition, plan.columns) == (
        INCREMENTAL, dt.date(2026, 5, 1), "2026-05", ("month", "mau"))
    assert plan.bind() == {"window_start": "2026-05-01"}
    never = decide(inc, day, full_refresh=False, published=None, selected=COLUMNS)
    assert (never.mode, never.reason, never.bind()) == (FULL, "never published", {"window_start": "1900-01-01"})
    forced = decide(inc, day, full_refresh=True, published=COLUMNS, selected=COLUMNS)
    assert (forced.mode, forced.window_start) == (FULL, incremental.FULL_WINDOW_START)
    changed = decide(inc, day, full_refresh=False, published=COLUMNS, selected=[*COLUMNS, ("CHANNEL", 2)])
    assert changed.mode == FULL and "differ" in changed.reason and "channel" in changed.reason
    retyped = decide(inc, day, full_refresh=False, published=COLUMNS, selected=[("MONTH", 2), ("MAU", 1)])
    assert retyped.mode == FULL
    plain = decide(None, day, full_refresh=False, published=COLUMNS, selected=COLUMNS)
    assert (plain.mode, plain.window_start) == (FULL, None)
