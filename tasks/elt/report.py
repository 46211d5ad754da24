"""What the ELT did for one run date, for the run summary and `python -m tasks status` (no luigi).

Per table of `[elt] table_specs`: whether its publish marker for the date is there, and the
newest build of that date in the builds table (status, mode, row count, check results by status
and the names of the checks that failed or warned). A table not built because a table it reads
(directly or through others) failed names that table in `blocked_by`. Reads [elt] and
[warehouse] (marker table).
"""

from __future__ import annotations

import datetime as dt
import json

from tasks import config
from tasks.elt import graph
from tasks.elt.builds import FAILED, BuildsTable
from tasks.elt.specs import load_specs
from tasks.errors import ConfigError
from tasks.warehouse import MarkerTableTarget, WarehouseClient


def table_reports(client: WarehouseClient, date: dt.date) -> list[dict[str, object]]:
    """One dict per configured table: table, published, status, mode, rows, checks {pass, fail, warn},
    problems, blocked_by (the failed table it reads, when it was not built because of it)."""
    builds = BuildsTable(client, config.EltConfig().builds_table)
    builds.ensure()
    specs = load_specs(config.resolve_path(config.EltConfig().table_specs))
    out = [_report(client, builds, spec.name.lower(), date) for spec in specs]
    try:
        deps = graph.dependencies(specs)
    except ConfigError:
        return out
    failed = {str(r["table"]) for r in out if r["status"] == FAILED and not r["published"]}
    for report in out:
        if not report["published"] and report["status"] != FAILED:
            report["blocked_by"] = graph.failed_upstream(deps, str(report["table"]), failed)
    return out


def _report(client: WarehouseClient, builds: BuildsTable, name: str, date: dt.date) -> dict[str, object]:
    marker = MarkerTableTarget(f"publish:{name}:{date.isoformat()}", name)
    published = marker.build_id(client) is not None
    rows = client.lookup_own("builds_for_date", {"table_name": name, "run_date": date.isoformat()},
                             table=builds.name, create="builds_create", builds=builds.name)
    report: dict[str, object] = {"table": name, "published": published, "status": "not built", "rows": None,
                                 "checks": {}, "problems": [], "mode": None, "blocked_by": None}
    if rows:
        build_id, status, row_count, checks, _, mode = rows[0]
        results = json.loads(checks) if checks else []
        counts: dict[str, int] = {}
        for check in results:
            counts[check.get("status", "?")] = counts.get(check.get("status", "?"), 0) + 1
        report.update(status=status, rows=None if row_count is None else int(row_count), checks=counts,
                      build_id=build_id, mode=mode or "full",
                      problems=[f"{c.get('name')} {c.get('status')}" for c in results
                                if c.get("status") in ("fail", "warn")])
    return report
