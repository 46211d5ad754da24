"""Stage, measure, swap: the warehouse steps of one table build (plain functions, no luigi).

Each staged table carries its build id (see dialect.py for where), and the id moves with
the table through the swap, so after a crash a re-run can tell which table holds the
validated build: if the published table holds it, the swap already happened (never swap back).
"""

from __future__ import annotations

import datetime as dt
import logging

from tasks.elt.checks import TableStats
from tasks.elt.specs import TableSpec
from tasks.errors import StaleBuildError
from tasks.warehouse.client import WarehouseClient
from tasks.warehouse.sql import ident_list

log = logging.getLogger(__name__)


def stage(client: WarehouseClient, spec: TableSpec, run_date: dt.date, build_id: str) -> None:
    """CREATE OR REPLACE the staging table from the spec's SELECT, commented with `build_id`."""
    client.ensure("create_schema", schema=spec.schema)
    client.dialect.create_staging(
        client, spec.staging_name, spec.select_sql(), build_id, {"run_date": run_date.isoformat()}
    )


def measure(client: WarehouseClient, spec: TableSpec) -> TableStats:
    """Row count, NULL-key rows and duplicated keys of the staged table, and the published row count."""
    null_cols = list(spec.primary_key) + [c for c in spec.checks.not_null if c not in spec.primary_key]
    null_predicate = " OR ".join(f"{c} IS NULL" for c in null_cols)
    (row_count, null_rows), = client.run("check_stats", table=spec.staging_name, null_predicate=null_predicate)
    (duplicates,), = client.run(
        "check_duplicate_keys", table=spec.staging_name, key_columns=ident_list(spec.primary_key)
    )
    published = None
    if table_exists(client, spec.name):
        (published,), = client.run("row_count", table=spec.name)
    published_rows = None if published is None else int(published)
    return TableStats(int(row_count), int(null_rows or 0), int(duplicates), published_rows)


def table_exists(client: WarehouseClient, name: str) -> bool:
    schema, table = name.split(".")
    (count,), = client.run("table_exists", {"schema": schema, "table": table})
    return bool(count)


def builds(client: WarehouseClient, spec: TableSpec) -> tuple[str | None, str | None]:
    """The build ids held by the published and the staging table; None if absent."""
    return client.dialect.table_builds(client, spec.name, spec.staging_name)


def publish(client: WarehouseClient, spec: TableSpec, build_id: str) -> str:
    """Make the validated build `build_id` the published table; idempotent. Returns what it did."""
    published, staged = builds(client, spec)
    if published == build_id:
        return "already published"
    if staged != build_id:
        raise StaleBuildError(
            f"{spec.name}: validated build {build_id} is in neither {spec.name} nor {spec.staging_name} "
            "(rebuilt or dropped since validation); re-run to stage it again"
        )
    if table_exists(client, spec.name):
        client.dialect.swap(client, spec.name, spec.staging_name, (published, staged))
        return "swapped"
    client.dialect.publish_first(client, spec.name, spec.staging_name, staged)
    return "renamed (first publish)"
