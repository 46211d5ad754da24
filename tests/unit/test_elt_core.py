"""Pure parts of the ELT: spec parsing, identifier validation, SQL rendering, checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.elt.checks import TableStats, blocking, table_results
from tasks.elt.graph import dependencies
from tasks.elt.specs import Incremental, TableChecks, load_specs, parse_specs
from tasks.errors import CheckFailure, ConfigError, DataValidationError
from tasks.warehouse.sql import SQL_DIR, ident, ident_list, qualified, render

REPO = Path(__file__).resolve().parents[2]

GOOD = """
[[table]]
name = "analytics.a"
primary_key = ["k1", "k2"]
sql = "sql/a.sql"
owner = "ana@example.com"
[table.checks]
not_null = ["v"]
min_rows = 3
max_row_drop_ratio = 0.25

[[table]]
name = "analytics.b"
primary_key = "k"
sql = "sql/b.sql"
"""


def test_parse_specs_in_order_with_defaults(tmp_path: Path) -> None:
    a, b = parse_specs(GOOD, tmp_path)
    assert (a.name, b.name) == ("analytics.a", "analytics.b")
    assert a.primary_key == ("k1", "k2") and b.primary_key == ("k",)
    assert a.staging_for("2026-06-30/0a1b2c3d4e5f") == "analytics.temp_a__20260630_0a1b2c3d4e5f"
    assert a.sql_path == (tmp_path / "sql" / "a.sql").resolve()
    assert a.checks.not_null == ("v",) and a.checks.min_rows == 3 and a.checks.max_row_drop_ratio == 0.25
    assert b.checks.min_rows == 1 and b.checks.max_row_drop_ratio is None


def test_bundled_specs_parse_and_point_at_existing_sql() -> None:
    specs = load_specs(REPO / "config" / "tables.toml")
    assert [s.name for s in specs] == ["analytics.mau_summary", "analytics.channel_mau", "analytics.mau_growth"]
    assert "TIMESTAMP_NTZ" in specs[0].select_sql()
    assert specs[0].incremental == Incremental("month", "month", 1)
    assert dependencies(specs) == {"analytics.mau_summary": (), "analytics.channel_mau": (),
                                   "analytics.mau_growth": ("analytics.mau_summary",)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one"),
        ("[[table]]\nname='analytics.a'\nsql='x.sql'\n", "primary_key"),
        ("[[table]]\nname='a'\nprimary_key=['k']\nsql='x.sql'\n", "schema.table"),
        ("[[table]]\nname='analytics.a; drop table x'\nprimary_key=['k']\nsql='x.sql'\n", "invalid SQL identifier"),
        ("[[table]]\nname='analytics.a'\nprimary_key=['k--']\nsql='x.sql'\n", "invalid SQL identifier"),
        ("[[table]]\nname='analytics.a'\nprimary_key=['k']\nsql='x.sql'\nbogus=1\n", "unknown keys"),
        ("[[table]]\nname='analytics.a'\nprimary_key=['k']\nsql='x.sql'\n[table.checks]\nmax_row_drop_ratio=2\n",
         "between 0 and 1"),
        ("[[table]]\nname='analytics.a'\nprimary_key=['k']\nsql='a.sql'\n"
         "[[table]]\nname='ANALYTICS.A'\nprimary_key=['k']\nsql='b.sql'\n", "listed twice"),
        ("[[table", "not valid TOML"),
    ],
)
def test_bad_specs_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_specs(text, tmp_path)


def test_a_bad_spec_names_its_file_and_key(tmp_path: Path) -> None:
    # "invalid SQL identifier 'bad-col'" named neither the file nor the setting; min_rows = true was accepted
    path = tmp_path / "tables.toml"
    for body, where in (
        ("primary_key=['k']\n[table.checks]\nnot_null=['bad-col']\n", "analytics.a checks.not_null"),
        ("primary_key=['k']\n[table.grants]\nselect=['an analyst']\n", "analytics.a grants.select"),
        ("primary_key=['k']\n[table.checks]\nrelationships=[{column='k', to='raw', to_column='id'}]\n",
         "analytics.a checks.relationships"),
        ("primary_key=['k']\n[table.checks]\nmin_rows=true\n", "analytics.a: min_rows"),
    ):
        path.write_text("[[table]]\nname='analytics.a'\nsql='a.sql'\n" + body)
        with pytest.raises(ConfigError) as caught:
            load_specs(path)
        assert str(caught.value).startswith(f"{path}: ") and where in str(caught.value), str(caught.value)


def test_one_not_null_column_may_be_written_alone(tmp_path: Path) -> None:
    # `not_null = "mau"` became the columns m, a and u
    text = "[[table]]\nname='analytics.a'\nprimary_key=['k']\nsql='a.sql'\n[table.checks]\nnot_null='mau'\n"
    assert parse_specs(text, tmp_path)[0].checks.not_null == ("mau",)


def test_min_rows_blocks_an_empty_table_even_when_not_empty_only_warns() -> None:
    # `if rows:` skipped min_rows on an empty table: with severity { not_empty = "warn" } an empty build
    # had no blocking check at all, min_rows = 5 notwithstanding
    checks = TableChecks(min_rows=5, severity=(("not_empty", "warn"),))
    got = blocking(table_results(stats(rows=0), checks, max_row_drop_ratio=0.5, key="month", not_null="month"))
    assert [f.name for f in got] == ["min_rows"]
    default = blocking(table_results(stats(rows=0), TableChecks(severity=(("not_empty", "warn"),)),
                                     max_row_drop_ratio=0.5, key="month", not_null="month"))
    assert default == [], "min_rows = 1 on an empty table is not_empty's call"


def test_empty_sql_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "a.sql").write_text("  ;\n")
    spec = parse_specs(GOOD, tmp_path)[0]
    with pytest.raises(ConfigError, match="is empty"):
        spec.select_sql()


@pytest.mark.parametrize("bad", ["", "1abc", "a b", "a;b", 'a"b', "a.b", "a-b", "x" * 300, None])
def test_ident_rejects_anything_but_plain_identifiers(bad) -> None:
    with pytest.raises(ConfigError):
        ident(bad)


def test_ident_and_qualified_accept_plain_names() -> None:
    assert ident("mau_summary$1") == "mau_summary$1"
    assert qualified("Analytics.Mau") == "Analytics.Mau"
    assert ident_list(["a", "b"]) == "a, b"
    with pytest.raises(ConfigError):
        ident_list([])


def test_every_packaged_sql_file_renders_and_binds_values_not_text() -> None:
    names = sorted(p.stem for p in SQL_DIR.glob("*.sql"))
    assert {"ctas_staging", "publish_clone", "publish_copy", "marker_upsert", "check_duplicate_keys"} <= set(names)
    sql = render("check_duplicate_keys", table="analytics.t", key_columns="a, b")
    assert "GROUP BY a, b HAVING COUNT(*) > 1" in sql
    upsert = render("marker_upsert", marker="analytics.table_updates")
    assert "%(update_id)s" in upsert and "%(build_id)s" in upsert  # values are bind parameters
    with pytest.raises(ConfigError, match="placeholder"):
        render("publish_clone", table="a.b")


def stats(rows=10, nulls=0, dups=0, published=None) -> TableStats:
    return TableStats(row_count=rows, null_rows=nulls, duplicate_keys=dups, published_rows=published)


def failures(s: TableStats, min_rows: int = 1, **kw) -> list[CheckFailure]:
    args = {"max_row_drop_ratio": 0.5, "key": "month", "not_null": "month, mau"} | kw
    return blocking(table_results(s, TableChecks(min_rows=min_rows), **args))


def test_a_clean_table_passes() -> None:
    assert failures(stats(rows=18, published=18)) == []
    assert failures(stats(rows=9, published=18)) == []  # exactly at the 50% floor
    assert failures(stats(rows=1, published=None)) == []  # nothing published yet: no drop guard


def test_every_failed_check_is_named_with_its_numbers() -> None:
    got = failures(stats(rows=0, nulls=0, dups=0, published=18))
    assert [f.name for f in got] == ["not_empty", "row_count_drop"]
    got = failures(stats(rows=4, nulls=2, dups=3, published=18), min_rows=5)
    assert [str(f) for f in got] == [
        "min_rows: staged table has 4 rows, expected >= 5",
        "primary_key_unique: 3 value(s) of (month) occur more than once",
        "not_null: 2 row(s) have NULL in (month, mau)",
        "row_count_drop: 4 rows staged vs 18 published (-78%, allowed -50%)",
    ]


def test_data_validation_error_lists_every_failure() -> None:
    err = DataValidationError("analytics.temp_t", [CheckFailure("a", "1 x"), CheckFailure("b", "2 y")])
    assert str(err) == "analytics.temp_t failed 2 check(s): a: 1 x; b: 2 y"
    assert [f.name for f in err.failures] == ["a", "b"]


def test_warehouse_error_names_the_statement_and_query_id() -> None:
    from tasks.errors import WarehouseError

    err = WarehouseError("ProgrammingError 2003: no such table", query_id="01b2-abc", sql_name="row_count")
    assert str(err) == "ProgrammingError 2003: no such table [row_count] (query id 01b2-abc)"
    assert err.query_id == "01b2-abc"


def test_a_spec_owner_address_receives_luigis_error_mails(tmp_path: Path, luigi_cfg) -> None:
    from tasks.elt.tasks import PublishTable, StageTable

    (tmp_path / "t.toml").write_text(
        "[[table]]\nname='analytics.a'\nprimary_key=['k']\nsql='a.sql'\nowner='ana@example.com'\n"
        "[[table]]\nname='analytics.b'\nprimary_key=['k']\nsql='b.sql'\nowner='analytics team'\n"
    )
    luigi_cfg.set("elt", "table_specs", tmp_path / "t.toml")
    assert StageTable(table="analytics.a").owner_email == "ana@example.com"
    assert PublishTable(table="analytics.a").owner_email == "ana@example.com"
    assert PublishTable(table="analytics.b").owner_email is None
