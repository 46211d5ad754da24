"""Table specs: which tables the ELT builds, in order, and how each is checked (pure; no luigi).

The spec file (`[elt] table_specs`, default config/tables.toml) is a TOML list:

    [[table]]
    name = "analytics.mau_summary"       # schema.table that gets published
    primary_key = ["month"]
    sql = "sql/mau_summary.sql"           # the SELECT, relative to the spec file
    owner = "analytics"
    [table.checks]
    not_null = ["mau"]                    # more columns that must not be NULL
    min_rows = 1
    max_row_drop_ratio = 0.5              # overrides [elt] max_row_drop_ratio

Tables build in the listed order, each after the previous one is published.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tasks.errors import ConfigError
from tasks.warehouse.sql import ident, qualified

_TABLE_KEYS = {"name", "primary_key", "sql", "owner", "staging", "checks", "description"}
_CHECK_KEYS = {"not_null", "min_rows", "max_row_drop_ratio"}


@dataclass(frozen=True)
class TableChecks:
    """Checks run on the staged table before it may be published."""

    not_null: tuple[str, ...] = ()
    min_rows: int = 1
    max_row_drop_ratio: float | None = None


@dataclass(frozen=True)
class TableSpec:
    """One table to build: where it goes, its key, its SELECT and its checks."""

    name: str
    primary_key: tuple[str, ...]
    sql_path: Path
    owner: str = ""
    staging: str = ""
    description: str = ""
    checks: TableChecks = field(default_factory=TableChecks)

    @property
    def schema(self) -> str:
        return self.name.split(".")[0]

    @property
    def table(self) -> str:
        return self.name.split(".")[1]

    @property
    def staging_name(self) -> str:
        return self.staging or f"{self.schema}.temp_{self.table}"

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
    return parse_specs(text, path.parent)


def _parse_entry(entry: object, index: int, base_dir: Path) -> TableSpec:
    if not isinstance(entry, dict):
        raise ConfigError(f"table entry {index} is not a table")
    unknown = set(entry) - _TABLE_KEYS
    if unknown:
        raise ConfigError(f"table entry {index}: unknown keys {sorted(unknown)}")
    for key in ("name", "primary_key", "sql"):
        if key not in entry:
            raise ConfigError(f"table entry {index}: missing required key {key!r}")
    name = qualified(entry["name"])
    pk = entry["primary_key"]
    if isinstance(pk, str):
        pk = [pk]
    if not isinstance(pk, list) or not pk:
        raise ConfigError(f"{name}: primary_key must be a non-empty list of column names")
    staging = qualified(entry["staging"]) if entry.get("staging") else ""
    if staging and staging.lower() == name.lower():
        raise ConfigError(f"{name}: staging table must differ from the published table")
    return TableSpec(
        name=name,
        primary_key=tuple(ident(c) for c in pk),
        sql_path=(base_dir / str(entry["sql"])).resolve(),
        owner=str(entry.get("owner", "")),
        staging=staging,
        description=str(entry.get("description", "")),
        checks=_parse_checks(name, entry.get("checks", {})),
    )


def _parse_checks(name: str, raw: object) -> TableChecks:
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: checks must be a table")
    unknown = set(raw) - _CHECK_KEYS
    if unknown:
        raise ConfigError(f"{name}: unknown checks {sorted(unknown)}")
    min_rows = raw.get("min_rows", 1)
    if not isinstance(min_rows, int) or min_rows < 0:
        raise ConfigError(f"{name}: min_rows must be a non-negative integer")
    ratio = raw.get("max_row_drop_ratio")
    if ratio is not None and (not isinstance(ratio, int | float) or not 0 <= ratio <= 1):
        raise ConfigError(f"{name}: max_row_drop_ratio must be between 0 and 1")
    return TableChecks(
        not_null=tuple(ident(c) for c in raw.get("not_null", [])),
        min_rows=min_rows,
        max_row_drop_ratio=float(ratio) if ratio is not None else None,
    )
