"""Pure data-quality checks on a staged table's measured statistics (no luigi, no SQL).

The measurements come from the warehouse (row count, NULL-key rows, duplicated keys, the
published table's row count); this module decides which checks failed and says why, with
the numbers, so DataValidationError can name every failed check at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.errors import CheckFailure


@dataclass(frozen=True)
class TableStats:
    """What was measured on a staged table (and on the published one, if any)."""

    row_count: int
    null_rows: int
    duplicate_keys: int
    published_rows: int | None  # None: nothing published yet


def table_failures(
    stats: TableStats, *, min_rows: int, max_row_drop_ratio: float, key: str, not_null: str
) -> list[CheckFailure]:
    """Every failed check, in a stable order (empty list: publishable)."""
    failures: list[CheckFailure] = []
    if stats.row_count == 0:
        failures.append(CheckFailure("not_empty", "staged table has 0 rows"))
    elif stats.row_count < min_rows:
        failures.append(CheckFailure("min_rows", f"staged table has {stats.row_count} rows, expected >= {min_rows}"))
    if stats.duplicate_keys:
        failures.append(
            CheckFailure("primary_key_unique", f"{stats.duplicate_keys} value(s) of ({key}) occur more than once")
        )
    if stats.null_rows:
        failures.append(CheckFailure("not_null", f"{stats.null_rows} row(s) have NULL in ({not_null})"))
    if stats.published_rows:
        floor = stats.published_rows * (1.0 - max_row_drop_ratio)
        if stats.row_count < floor:
            drop = 1.0 - stats.row_count / stats.published_rows
            failures.append(
                CheckFailure(
                    "row_count_drop",
                    f"{stats.row_count} rows staged vs {stats.published_rows} published "
                    f"(-{drop:.0%}, allowed -{max_row_drop_ratio:.0%})",
                )
            )
    return failures
