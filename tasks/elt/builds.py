"""The builds table: one row per build of every table, in the warehouse (plain functions, no luigi).

`[elt] builds_table` (default analytics.elt_builds) holds, per build: the table, the build id,
the run date, its own staging table, its status (staging -> validated | failed -> published |
superseded: validated, but a newer build of the table, a later run date or the same date staged
later, was published first, so this one never is), its row count, every check result as JSON,
when it was created, validated, published and its staging table dropped, its `mode` ('full' or
'incremental'; NULL for builds from before incremental builds, which were all full) and
`window_start` (the first day an incremental table's SELECT read from). It is what a re-run
reads to know where a build is (a COMMENT ON cannot erase it), the row-count history
`row_count_anomaly` compares with, and a table analysts can query:

    SELECT run_date, status, row_count, checks FROM analytics.elt_builds
    WHERE table_name = 'analytics.mau_summary' ORDER BY created_at DESC;

`stale_to_drop` decides (pure) which staging tables a publish clears away: builds published
before the last two (the published one and the rollback copy), and builds that never got
published once they are older than `[elt] stale_build_hours` (runs that died or lost).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from tasks.elt.checks import CheckResult
from tasks.warehouse.client import WarehouseClient
from tasks.warehouse.sql import qualified

STAGING, VALIDATED, FAILED, PUBLISHED = "staging", "validated", "failed", "published"
SUPERSEDED = "superseded"  # validated, but a newer build of the table was published first: never published
KEEP_PUBLISHED = 2  # the published build and the one before it (the rollback copy)


@dataclass(frozen=True)
class Build:
    """One row of the builds table."""

    table_name: str
    build_id: str
    staging_table: str
    status: str
    created_at: dt.datetime | None
    published_at: dt.datetime | None = None  # meaningful once status is published
    dropped: bool = False  # its staging table was dropped
    mode: str = "full"  # full or incremental

    @property
    def publishable(self) -> bool:
        """Validated and its staging table still there: publish() may make it the table."""
        return self.status == VALIDATED and not self.dropped


def utc_now() -> dt.datetime:
    """Now in UTC without a zone (the builds table's TIMESTAMP_NTZ columns are UTC)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class BuildsTable:
    """Reads and writes the builds table `name` through `client`."""

    def __init__(self, client: WarehouseClient, name: str) -> None:
        self.client = client
        self.name = qualified(name)

    def _run(self, statement: str, params: dict[str, object] | None = None, **identifiers: str) -> list[tuple]:
        return self.client.run(statement, params, builds=self.name, **identifiers)

    def start(
        self, table: str, build_id: str, staging: str, run_date: dt.date, now: dt.datetime, *, mode: str = "full",
        window_start: dt.date | None = None,
    ) -> None:
        """Record a new build (status staging) before its staging table is created."""
        self.ensure()
        self._run("builds_insert", {"table_name": table.lower(), "build_id": build_id, "staging_table": staging,
                                    "run_date": run_date.isoformat(), "now": now, "mode": mode,
                                    "window_start": window_start.isoformat() if window_start else None})

    def ensure(self) -> None:
        """Create the builds table if absent, and add the columns a table from before incremental builds
        lacks (ADD COLUMN IF NOT EXISTS: idempotent); once per connection."""
        self.client.ensure("create_schema", schema=self.name.split(".")[0])
        self.client.ensure("builds_create", builds=self.name)
        self.client.ensure("builds_add_mode", builds=self.name)
        self.client.ensure("builds_add_window_start", builds=self.name)

    def checked(self, build_id: str, results: Sequence[CheckResult], row_count: int | None, now: dt.datetime) -> str:
        """Record a build's check results; its status becomes failed (a blocking check failed) or validated."""
        status = FAILED if any(r.blocks for r in results) else VALIDATED
        checks = json.dumps([r.as_record() for r in results], separators=(",", ":"))
        self._run("builds_checked", {"build_id": build_id, "status": status, "row_count": row_count,
                                     "checks": checks, "now": now})
        return status

    def published(self, build_id: str, now: dt.datetime) -> None:
        self._run("builds_published", {"build_id": build_id, "now": now})

    def newer_published(self, build_id: str) -> bool:
        """True when a newer build of the same table (a later run date, or the same date staged later) is
        published: publishing `build_id` would put an older version back."""
        ((count,),) = self._run("builds_newer_published", {"build_id": build_id})
        return bool(count)

    def superseded(self, build_id: str) -> None:
        self._run("builds_superseded", {"build_id": build_id})

    def dropped(self, build_id: str, now: dt.datetime) -> None:
        self._run("builds_dropped", {"build_id": build_id, "now": now})

    def get(self, build_id: str) -> Build | None:
        """The build `build_id`, or None when no run recorded it (or the table does not exist yet)."""
        self.ensure()  # a builds table from before incremental builds gets its mode column first
        rows = self.client.lookup_own("builds_lookup", {"build_id": build_id}, table=self.name,
                                      create="builds_create", builds=self.name)
        return _build(rows[0]) if rows else None

    def open_builds(self, table: str) -> list[Build]:
        """Builds of `table` whose staging table has not been dropped."""
        return [_build(r) for r in self._run("builds_open", {"table_name": table.lower()})]

    def history(self, table: str, build_id: str, limit: int) -> tuple[int, ...]:
        """Row counts of the last `limit` validated builds of `table` other than `build_id`, newest first."""
        rows = self._run("builds_history", {"table_name": table.lower(), "build_id": build_id}, limit=str(int(limit)))
        return tuple(int(r[0]) for r in rows if r[0] is not None)


def _build(row: tuple) -> Build:
    table_name, build_id, staging, status, created_at, published_at, dropped, mode = row
    return Build(table_name, build_id, staging, status, created_at,
                 published_at if status == PUBLISHED else None, bool(dropped), mode or "full")


def stale_to_drop(builds: Sequence[Build], now: dt.datetime, stale_after: dt.timedelta) -> list[Build]:
    """The builds whose staging tables may go: published before the last KEEP_PUBLISHED, or never
    published and older than `stale_after` (younger ones may belong to a run still going)."""
    published = sorted((b for b in builds if b.status == PUBLISHED),
                       key=lambda b: b.published_at or dt.datetime.min, reverse=True)
    keep = {b.build_id for b in published[:KEEP_PUBLISHED]}
    return [
        b for b in builds
        if not b.dropped and b.build_id not in keep
        and (b.status == PUBLISHED or (b.created_at is not None and now - b.created_at > stale_after))
    ]
