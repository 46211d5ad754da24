"""What the ELT did for one run date, for the run summary and `python -m tasks status` (no luigi).

Per table of `[elt] table_specs`: whether its publish marker for the date is there, and the
newest build of that date in the builds table (status, row count, check results by status and
the names of the checks that failed or warned). Reads [elt] and [warehouse] (marker table).
"""

from __future__ import annotations

import datetime as dt
import json

from tasks import config
from tasks.elt.builds import BuildsTable
from tasks.elt.specs import load_specs
from tasks.warehouse import MarkerTableTarget, WarehouseClient


def table_reports(client: WarehouseClient, date: dt.date) -> list[dict[str, object]]:
    """One dict per configured table: table, published, status, rows, checks {pass, fail, warn}, problems."""
    builds = BuildsTable(client, config.EltConfig().builds_table)
    out: list[dict[str, object]] = []
    for spec in load_specs(config.resolve_path(config.EltConfig().table_specs)):
        name = spec.name.lower()
        marker = MarkerTableTarget(f"publish:{name}:{date.isoformat()}", spec.name)
        published = marker.build_id(client) is not None
        rows = client.lookup_own("builds_for_date", {"table_name": name, "run_date": date.isoformat()},
                                 table=builds.name, create="builds_create", builds=builds.name)
        report: dict[str, object] = {"table": name, "published": published, "status": "not built", "rows": None,
                                     "checks": {}, "problems": []}
        if rows:
            build_id, status, row_count, checks, _ = rows[0]
            results = json.loads(checks) if checks else []
            counts: dict[str, int] = {}
            for check in results:
                counts[check.get("status", "?")] = counts.get(check.get("status", "?"), 0) + 1
            report.update(status=status, rows=None if row_count is None else int(row_count), checks=counts,
                          build_id=build_id,
                          problems=[f"{c.get('name')} {c.get('status')}" for c in results
                                    if c.get("status") in ("fail", "warn")])
        out.append(report)
    return out
