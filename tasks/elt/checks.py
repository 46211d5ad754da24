"""Pure data-quality checks on a build's measured statistics (no luigi, no SQL).

The measurements come from the warehouse (steps.measure, steps.check_freshness); this module decides
which checks passed, failed or only warn, and says why with the numbers, so that
DataValidationError names every failed check at once and the builds table keeps every result.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from tasks.elt.specs import Freshness, TableChecks
from tasks.errors import CheckFailure


@dataclass(frozen=True)
class CheckResult:
    """One check on one build: passed or not, with its numbers."""

    kind: str  # a specs.CHECK_KINDS entry (what `severity` names)
    name: str  # the kind plus what it looked at, e.g. "accepted_values(channel)"
    passed: bool
    detail: str
    severity: str = "error"  # "warn": reported and alerted, never blocks the publish

    @property
    def blocks(self) -> bool:
        return not self.passed and self.severity == "error"

    @property
    def warns(self) -> bool:
        return not self.passed and self.severity == "warn"

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"

    def as_record(self) -> dict[str, object]:
        """The result as a JSON object for the builds table."""
        record = asdict(self)
        record["status"] = "pass" if self.passed else ("fail" if self.blocks else "warn")
        del record["passed"]
        return record


@dataclass(frozen=True)
class TableStats:
    """What was measured on a staged table (and on the published one and earlier builds)."""

    row_count: int
    null_rows: int
    duplicate_keys: int
    published_rows: int | None  # None: nothing published yet
    rejected: tuple[int, ...] = ()  # per accepted_values entry: non-null rows outside the list
    orphans: tuple[int, ...] = ()  # per relationship: non-null rows without a match
    violations: tuple[int, ...] = ()  # per expression: rows where it is not TRUE
    history: tuple[int, ...] = ()  # row counts of earlier validated builds, newest first


def table_results(
    stats: TableStats, checks: TableChecks, *, max_row_drop_ratio: float, key: str, not_null: str
) -> list[CheckResult]:
    """Every check of the staged table, passed or not, in a stable order."""
    results: list[CheckResult] = []

    def add(kind: str, name: str, passed: bool, detail: str) -> None:
        results.append(CheckResult(kind, name, passed, detail, checks.severity_of(kind)))

    rows = stats.row_count
    add("not_empty", "not_empty", rows > 0, f"staged table has {rows} rows")
    # on an empty table min_rows = 1 would repeat not_empty; a larger one may block where not_empty only warns
    if rows or checks.min_rows > 1:
        add("min_rows", "min_rows", rows >= checks.min_rows,
            f"staged table has {rows} rows, expected >= {checks.min_rows}")
    add("primary_key_unique", "primary_key_unique", not stats.duplicate_keys,
        f"{stats.duplicate_keys} value(s) of ({key}) occur more than once")
    add("not_null", "not_null", not stats.null_rows, f"{stats.null_rows} row(s) have NULL in ({not_null})")
    for (column, values), bad in zip(checks.accepted_values, stats.rejected, strict=True):
        add("accepted_values", f"accepted_values({column})", not bad,
            f"{bad} row(s) have a {column} outside the {len(values)} accepted value(s) {list(values)}")
    for rel, bad in zip(checks.relationships, stats.orphans, strict=True):
        add("relationships", f"relationships({rel.label})", not bad,
            f"{bad} row(s) have a {rel.column} not found in {rel.to}.{rel.to_column}")
    for expr, bad in zip(checks.expressions, stats.violations, strict=True):
        add("expressions", f"expressions({expr.sql})", not bad, f"{bad} of {rows} row(s) do not satisfy it")
    if stats.published_rows:
        floor = stats.published_rows * (1.0 - max_row_drop_ratio)
        drop = 1.0 - rows / stats.published_rows
        add("row_count_drop", "row_count_drop", rows >= floor,
            f"{rows} rows staged vs {stats.published_rows} published "
            f"(-{max(drop, 0):.0%}, allowed -{max_row_drop_ratio:.0%})")
    if checks.row_count_anomaly is not None:
        add("row_count_anomaly", "row_count_anomaly", *_anomaly(rows, stats.history, checks))
    return results


def _anomaly(rows: int, history: tuple[int, ...], checks: TableChecks) -> tuple[bool, str]:
    spec = checks.row_count_anomaly
    assert spec is not None
    recent = history[: spec.history]
    if not recent:
        return True, f"{rows} rows; no earlier validated build to compare with"
    median = statistics.median(recent)
    allowed = f"allowed x{1 / spec.max_change_ratio:.2f} to x{spec.max_change_ratio:g}"
    of = f"the last {len(recent)} validated build(s)"
    if median == 0:
        return rows == 0, f"{rows} rows vs median 0 of {of}"
    ratio = rows / median
    ok = 1 / spec.max_change_ratio <= ratio <= spec.max_change_ratio
    return ok, f"{rows} rows vs median {median:g} of {of} (x{ratio:.2f}, {allowed})"


def freshness_result(
    fresh: Freshness, newest: dt.datetime | dt.date | None, run_date: dt.date, severity: str = "error"
) -> CheckResult:
    """Is the source's newest timestamp within `max_age_hours` of the end of the run date?"""
    name = f"freshness({fresh.source}.{fresh.column})"
    end = dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time())
    if newest is None:
        return CheckResult("freshness", name, False, f"{fresh.source} has no {fresh.column} at all", severity)
    if not isinstance(newest, dt.datetime):
        newest = dt.datetime.combine(newest, dt.time())
    if newest.tzinfo is not None:
        newest = newest.astimezone(dt.UTC).replace(tzinfo=None)
    age = (end - newest).total_seconds() / 3600
    detail = (f"newest {fresh.column} is {newest.isoformat(sep=' ')}, {age:,.1f} h before the end of the run date "
              f"{run_date.isoformat()} (allowed {fresh.max_age_hours:g} h)")
    return CheckResult("freshness", name, age <= fresh.max_age_hours, detail, severity)


def blocking(results: list[CheckResult]) -> list[CheckFailure]:
    """The failed checks that block the publish, as DataValidationError takes them."""
    return [CheckFailure(r.name, r.detail) for r in results if r.blocks]


def warnings(results: Sequence[CheckResult]) -> list[CheckResult]:
    """The failed checks with severity warn."""
    return [r for r in results if r.warns]
