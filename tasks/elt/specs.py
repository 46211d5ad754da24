"""Table specs: which tables the ELT builds, in order, how each is checked and who may read it
(pure; no luigi).

The spec file (`[elt] table_specs`, default config/tables.toml) is a TOML list:

    [[table]]
    name = "analytics.mau_summary"       # schema.table that gets published
    primary_key = ["month"]
    sql = "sql/mau_summary.sql"           # the SELECT, relative to the spec file
    owner = "analytics"
    description = "Monthly active users"  # the published table's comment
    grants = { select = ["ANALYST"] }     # granted after every publish (Snowflake)
    [table.checks]
    not_null = ["mau"]                    # more columns that must not be NULL
    min_rows = 1
    max_row_drop_ratio = 0.5              # overrides [elt] max_row_drop_ratio
    accepted_values = { channel = ["organic", "paid"] }
    relationships = [{ column = "sessionid", to = "raw_data.s", to_column = "sessionid" }]
    expressions = ["mau >= 0", { sql = "mau <= %(cap)s", params = { cap = 1000000 } }]
    freshness = { source = "raw_data.s", column = "ts", max_age_hours = 36 }
    row_count_anomaly = { history = 7, max_change_ratio = 3.0 }
    severity = { freshness = "warn" }     # warn: log and alert, do not block the publish
    [table.incremental]                   # optional: rebuild only the recent partitions
    key = "month"                         # output column that partitions the table
    grain = "month"                       # "day" (key holds YYYY-MM-DD) or "month" (YYYY-MM)
    lookback = 1                          # partitions before the run date's own rebuilt too

    depends_on = ["analytics.other"]      # (before any [table.*] part) tables the SQL cannot show

A table is staged once every table it reads is published: the tables its SELECT names (found
by tasks/elt/graph.py) plus `depends_on`; the listed order is only Luigi's priority. Every staged
build gets its own table, `<staging prefix>__<build token>` (default prefix
`<schema>.temp_<table>`), so two runs never share a staging table.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tasks.errors import ConfigError
from tasks.warehouse.sql import ident, qualified

_TABLE_KEYS = {
    "name", "primary_key", "sql", "owner", "staging", "checks", "description", "grants", "depends_on", "incremental",
}
GRAINS = ("day", "month")
_CHECK_KEYS = {
    "not_null", "min_rows", "max_row_drop_ratio", "accepted_values", "relationships", "expressions",
    "freshness", "row_count_anomaly", "severity",
}
# every check kind, in the order results are reported; `severity` may name any of them
CHECK_KINDS = (
    "freshness", "not_empty", "min_rows", "primary_key_unique", "not_null", "accepted_values",
    "relationships", "expressions", "row_count_drop", "row_count_anomaly",
)
PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES"}
RESERVED_PARAMS = {"run_date"}


@dataclass(frozen=True)
class Relationship:
    """Every non-null `column` value of the staged table exists in `to`.`to_column`."""

    column: str
    to: str
    to_column: str

    @property
    def label(self) -> str:
        return f"{self.column} -> {self.to}.{self.to_column}"


@dataclass(frozen=True)
class Expression:
    """A SQL boolean over the staged table's columns that must hold (be TRUE) for every row."""

    sql: str
    params: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class Freshness:
    """The newest `column` value of `source` is at most `max_age_hours` before the end of the run date."""

    source: str
    column: str
    max_age_hours: float


@dataclass(frozen=True)
class RowCountAnomaly:
    """The row count stays within x1/`max_change_ratio`..x`max_change_ratio` of the median of the
    last `history` validated builds."""

    history: int
    max_change_ratio: float


@dataclass(frozen=True)
class TableChecks:
    """Checks run on the staged table (freshness: on its source, before the CTAS)."""

    not_null: tuple[str, ...] = ()
    min_rows: int = 1
    max_row_drop_ratio: float | None = None
    accepted_values: tuple[tuple[str, tuple[object, ...]], ...] = ()
    relationships: tuple[Relationship, ...] = ()
    expressions: tuple[Expression, ...] = ()
    freshness: Freshness | None = None
    row_count_anomaly: RowCountAnomaly | None = None
    severity: tuple[tuple[str, str], ...] = ()  # check kind -> "warn" (anything not listed: "error")

    def severity_of(self, kind: str) -> str:
        return dict(self.severity).get(kind, "error")

    def expression_params(self) -> dict[str, object]:
        """The bind parameters every expression may use (besides run_date)."""
        return {k: v for e in self.expressions for k, v in e.params}


@dataclass(frozen=True)
class Incremental:
    """How an incremental table is rebuilt: whole partitions of `key` (one `grain` each), the run date's
    own and `lookback` before it; the SELECT reads its sources from `%(window_start)s` on."""

    key: str
    grain: str
    lookback: int


@dataclass(frozen=True)
class TableSpec:
    """One table to build: where it goes, its key, its SELECT, its checks and its grants."""

    name: str
    primary_key: tuple[str, ...]
    sql_path: Path
    owner: str = ""
    staging: str = ""
    description: str = ""
    checks: TableChecks = field(default_factory=TableChecks)
    grants: tuple[tuple[str, tuple[str, ...]], ...] = ()  # privilege -> roles
    depends_on: tuple[str, ...] = ()  # tables read that the SELECT does not name (lower case)
    incremental: Incremental | None = None

    @property
    def schema(self) -> str:
        return self.name.split(".")[0]

    @property
    def table(self) -> str:
        return self.name.split(".")[1]

    @property
    def staging_prefix(self) -> str:
        return self.staging or f"{self.schema}.temp_{self.table}"

    def staging_for(self, build_id: str) -> str:
        """The staging table of build `build_id` (its own table: no other run writes to it)."""
        return qualified(f"{self.staging_prefix}__{build_token(build_id)}")

    def select_sql(self) -> str:
        """The table's SELECT statement from its SQL file."""
        try:
            text = self.sql_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{self.name}: cannot read SQL file {self.sql_path}: {exc}") from exc
        text = text.strip().rstrip(";").strip()
        if not text:
            raise ConfigError(f"{self.name}: SQL file {self.sql_path} is empty")
        return text


def build_token(build_id: str) -> str:
    """A build id as an identifier suffix: `2026-06-30/0a1b2c3d4e5f` -> `20260630_0a1b2c3d4e5f`."""
    return re.sub(r"[^A-Za-z0-9_]", "", build_id.replace("/", "_"))


def parse_specs(text: str, base_dir: Path) -> list[TableSpec]:
    """Parse and validate a spec file's text; SQL paths are resolved against `base_dir`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"table specs are not valid TOML: {exc}") from exc
    entries = data.get("table")
    if not isinstance(entries, list) or not entries:
        raise ConfigError("table specs must hold at least one [[table]] entry")
    specs: list[TableSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries, start=1):
        specs.append(_parse_entry(entry, i, base_dir))
        key = specs[-1].name.lower()
        if key in seen:
            raise ConfigError(f"table {specs[-1].name} is listed twice")
        seen.add(key)
    return specs


def load_specs(path: Path) -> list[TableSpec]:
    """Read and validate the spec file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read table specs {path}: {exc}") from exc
    try:
        return parse_specs(text, path.parent)
    except ConfigError as exc:  # every problem names the file it is in
        raise ConfigError(f"{path}: {exc}") from None


def _parse_entry(entry: object, index: int, base_dir: Path) -> TableSpec:
    if not isinstance(entry, dict):
        raise ConfigError(f"table entry {index} is not a table")
    unknown = set(entry) - _TABLE_KEYS
    if unknown:
        raise ConfigError(f"table entry {index}: unknown keys {sorted(unknown)}")
    for key in ("name", "primary_key", "sql"):
        if key not in entry:
            raise ConfigError(f"table entry {index}: missing required key {key!r}")
    name = qualified(entry["name"], where=f"table entry {index} name")
    pk = _names(entry["primary_key"])
    if not pk:
        raise ConfigError(f"{name}: primary_key must be a non-empty list of column names")
    # a prefix: builds add __<id>
    staging = qualified(entry["staging"], where=f"{name} staging") if entry.get("staging") else ""
    return TableSpec(
        name=name,
        primary_key=tuple(ident(c, f"{name} primary_key") for c in pk),
        sql_path=(base_dir / str(entry["sql"])).resolve(),
        owner=str(entry.get("owner", "")),
        staging=staging,
        description=str(entry.get("description", "")),
        checks=_parse_checks(name, entry.get("checks", {})),
        grants=_parse_grants(name, entry.get("grants", {})),
        depends_on=_depends_on(name, entry.get("depends_on", [])),
        incremental=_incremental(name, entry["incremental"]) if "incremental" in entry else None,
    )


def _depends_on(name: str, raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise ConfigError(f"{name}: depends_on must be a list of schema.table names")
    return tuple(qualified(t, where=f"{name} depends_on").lower() for t in raw)


def _incremental(name: str, raw: object) -> Incremental:
    if not isinstance(raw, dict) or set(raw) != {"key", "grain", "lookback"}:
        raise ConfigError(f"{name}: incremental needs exactly key, grain and lookback")
    key = ident(raw["key"], f"{name} incremental.key")
    if raw["grain"] not in GRAINS:
        raise ConfigError(f"{name}: incremental.grain must be one of {list(GRAINS)}, got {raw['grain']!r}")
    lookback = raw["lookback"]
    if not isinstance(lookback, int) or isinstance(lookback, bool) or not 0 <= lookback <= 1000:
        raise ConfigError(f"{name}: incremental.lookback must be an integer from 0 to 1000")
    return Incremental(key, raw["grain"], lookback)


def _parse_grants(name: str, raw: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: grants must be a table like {{ select = [\"ANALYST\"] }}")
    grants = []
    for privilege, roles in raw.items():
        if privilege.upper() not in PRIVILEGES:
            raise ConfigError(f"{name}: grants: unknown privilege {privilege!r} (one of {sorted(PRIVILEGES)})")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise ConfigError(f"{name}: grants.{privilege} must be a list of role names")
        grants.append((privilege.upper(), tuple(ident(r, f"{name} grants.{privilege}") for r in roles)))
    return tuple(grants)


def _parse_checks(name: str, raw: object) -> TableChecks:
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: checks must be a table")
    unknown = set(raw) - _CHECK_KEYS
    if unknown:
        raise ConfigError(f"{name}: unknown checks {sorted(unknown)}")
    min_rows = raw.get("min_rows", 1)
    if not isinstance(min_rows, int) or isinstance(min_rows, bool) or min_rows < 0:
        raise ConfigError(f"{name}: min_rows must be a non-negative integer")
    ratio = raw.get("max_row_drop_ratio")
    if ratio is not None and (not _is_number(ratio) or not 0 <= ratio <= 1):
        raise ConfigError(f"{name}: max_row_drop_ratio must be between 0 and 1")
    return TableChecks(
        not_null=tuple(ident(c, f"{name} checks.not_null") for c in _names(raw.get("not_null", []))),
        min_rows=min_rows,
        max_row_drop_ratio=float(ratio) if ratio is not None else None,
        accepted_values=_accepted_values(name, raw.get("accepted_values", {})),
        relationships=_relationships(name, raw.get("relationships", [])),
        expressions=_expressions(name, raw.get("expressions", [])),
        freshness=_freshness(name, raw["freshness"]) if "freshness" in raw else None,
        row_count_anomaly=_anomaly(name, raw["row_count_anomaly"]) if "row_count_anomaly" in raw else None,
        severity=_severity(name, raw.get("severity", {})),
    )


def _names(value: object) -> list:
    """A list of column names; one may be written alone (`not_null = "mau"`, not the letters m, a and u); what
    is not a name then fails ident() naming its key."""
    return value if isinstance(value, list) else [value]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _accepted_values(name: str, raw: object) -> tuple[tuple[str, tuple[object, ...]], ...]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: accepted_values must be a table of column = [values]")
    out = []
    for column, values in raw.items():
        if not isinstance(values, list) or not values or not all(
            isinstance(v, str) or _is_number(v) for v in values
        ):
            raise ConfigError(f"{name}: accepted_values.{column} must be a non-empty list of strings or numbers")
        out.append((ident(column, f"{name} checks.accepted_values"), tuple(values)))
    return tuple(out)


def _relationships(name: str, raw: object) -> tuple[Relationship, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{name}: relationships must be a list of {{ column, to, to_column }}")
    out = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"column", "to", "to_column"}:
            raise ConfigError(f"{name}: each relationship needs exactly column, to and to_column")
        where = f"{name} checks.relationships"
        out.append(Relationship(ident(item["column"], where), qualified(item["to"], where=where),
                                ident(item["to_column"], where)))
    return tuple(out)


def _expressions(name: str, raw: object) -> tuple[Expression, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{name}: expressions must be a list")
    out: list[Expression] = []
    bound: dict[str, object] = {}
    for item in raw:
        sql, params = (item, {}) if isinstance(item, str) else (
            (item.get("sql"), item.get("params", {})) if isinstance(item, dict) else (None, None))
        if not isinstance(sql, str) or not sql.strip() or ";" in sql or not isinstance(params, dict):
            raise ConfigError(f"{name}: an expression is a SQL string (no ';') or {{ sql = ..., params = {{...}} }}")
        for key, value in params.items():
            if key in RESERVED_PARAMS or key.startswith("accepted_") or (key in bound and bound[key] != value):
                raise ConfigError(f"{name}: expression parameter {key!r} is reserved or bound twice differently")
            if not (isinstance(value, str) or _is_number(value)):
                raise ConfigError(f"{name}: expression parameter {key!r} must be a string or a number")
            bound[key] = value
        out.append(Expression(sql.strip(), tuple(params.items())))
    unbound = {p for e in out for p in re.findall(r"%\((\w+)\)s", e.sql)} - set(bound) - RESERVED_PARAMS
    if unbound:
        raise ConfigError(f"{name}: expressions use parameters without a value: {sorted(unbound)}")
    return tuple(out)


def _freshness(name: str, raw: object) -> Freshness:
    if not isinstance(raw, dict) or set(raw) != {"source", "column", "max_age_hours"}:
        raise ConfigError(f"{name}: freshness needs exactly source, column and max_age_hours")
    hours = raw["max_age_hours"]
    if not _is_number(hours) or hours <= 0:
        raise ConfigError(f"{name}: freshness.max_age_hours must be a positive number")
    where = f"{name} checks.freshness"
    return Freshness(qualified(raw["source"], where=where), ident(raw["column"], where), float(hours))


def _anomaly(name: str, raw: object) -> RowCountAnomaly:
    if not isinstance(raw, dict) or not set(raw) <= {"history", "max_change_ratio"}:
        raise ConfigError(f"{name}: row_count_anomaly takes history and max_change_ratio")
    history, ratio = raw.get("history", 7), raw.get("max_change_ratio", 3.0)
    if not isinstance(history, int) or isinstance(history, bool) or not 1 <= history <= 1000:
        raise ConfigError(f"{name}: row_count_anomaly.history must be an integer from 1 to 1000")
    if not _is_number(ratio) or ratio <= 1:
        raise ConfigError(f"{name}: row_count_anomaly.max_change_ratio must be a number above 1")
    return RowCountAnomaly(history, float(ratio))


def _severity(name: str, raw: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: severity must be a table of check = \"warn\" | \"error\"")
    for kind, level in raw.items():
        if kind not in CHECK_KINDS or level not in ("warn", "error"):
            raise ConfigError(f"{name}: severity.{kind} = {level!r}: checks are {list(CHECK_KINDS)}, "
                              "levels \"warn\" or \"error\"")
    return tuple(raw.items())
