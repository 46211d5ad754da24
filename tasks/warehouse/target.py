"""Marker-table target: a step is done when its row is in the marker table (luigi's PostgresTarget way).

Reads [warehouse] marker_table. The row is written as a task's last step; a missing marker
table means "not done" (and is created), a marker table this role cannot read is a
NotAuthorizedError, never "not done". Rows also carry the build id they refer to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import luigi

from tasks import config
from tasks.warehouse.client import WarehouseClient, session
from tasks.warehouse.sql import qualified


def marker_table() -> str:
    return qualified(config.WarehouseConfig().marker_table)


class MarkerTableTarget(luigi.Target):
    """Exists when the marker table holds a row for `update_id`."""

    def __init__(self, update_id: str, target_table: str) -> None:
        self.update_id = update_id
        self.target_table = target_table

    def build_id(self, client: WarehouseClient | None = None) -> str | None:
        """The build id recorded for this step, or None when the step is not done."""
        if client is None:
            with session() as own:
                return self.build_id(own)
        marker = marker_table()
        rows = client.lookup_own(
            "marker_lookup", {"update_id": self.update_id}, table=marker, create="marker_create", marker=marker
        )
        return rows[0][0] if rows else None

    def exists(self) -> bool:
        return self.build_id() is not None

    def touch(self, client: WarehouseClient, build_id: str) -> None:
        """Record the step as done (idempotent: MERGE on update_id)."""
        marker = marker_table()
        client.ensure("create_schema", schema=marker.split(".")[0])
        client.ensure("marker_create", marker=marker)
        client.run(
            "marker_upsert",
            {"update_id": self.update_id, "target_table": self.target_table, "build_id": build_id},
            marker=marker,
        )


def marker_days(client: WarehouseClient, step: str, tables: Iterable[str], dates: Iterable[dt.date]) -> set[dt.date]:
    """The dates among `dates` on which every table of `tables` has its `<step>:<table>:<date>` marker row,
    from one query over the step's rows (a Luigi bulk_complete for a whole range)."""
    marker = marker_table()
    rows = client.lookup_own("marker_prefix", {"pattern": f"{step}:%"}, table=marker, create="marker_create",
                             marker=marker)
    present = {str(r[0]) for r in rows}
    names = [t.lower() for t in tables]
    return {d for d in dates if all(f"{step}:{t}:{d.isoformat()}" in present for t in names)}
