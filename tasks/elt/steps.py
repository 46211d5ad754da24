"""Stage, check, publish, clear: the warehouse steps of one table build (plain functions, no luigi).

Every build has its own staging table (`TableSpec.staging_for(build_id)`) and a row in the
builds table (builds.py), written before the CTAS and updated with the check results. The
publish takes the build by its id: it replaces the published table with a copy of exactly
that validated staging table in one statement (dialect.publish), so no other run's CTAS can
slip in between the check and the publish, and a re-run after a crash publishes the same
build again at worst (never an older one: there is no swap to undo).

An incremental build (incremental.py decides) fills its staging table differently: a clone of
the published table, its rebuilt partitions deleted, the SELECT's rows inserted; the checks then
run on the whole staging table and the publish is the same, so readers see the old or the new
validated table, never a half-merged one.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from tasks.elt.builds import PUBLISHED, SUPERSEDED, Build, BuildsTable, stale_to_drop, utc_now
from tasks.elt.checks import CheckResult, TableStats, blocking, freshness_result, table_results, warnings
from tasks.elt.incremental import FULL, BuildPlan, decide
from tasks.elt.specs import TableSpec
from tasks.errors import ConfigError, DataValidationError, ObjectMissingError, StaleBuildError
from tasks.faults import fault_point
from tasks.warehouse.client import WarehouseClient
from tasks.warehouse.sql import ident, ident_list

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Staged:
    """A staged build that passed every blocking check."""

    build_id: str
    staging: str
    row_count: int
    results: tuple[CheckResult, ...]
    plan: BuildPlan | None = None


def new_build_id(run_date: dt.date) -> str:
    """A fresh build id: the run date and 12 random hex digits."""
    return f"{run_date.isoformat()}/{uuid.uuid4().hex[:12]}"


def stage_validated(
    client: WarehouseClient, spec: TableSpec, run_date: dt.date, build_id: str, builds: BuildsTable,
    *, max_row_drop_ratio: float, full_refresh: bool = False,
) -> Staged:
    """Check the source's freshness, build `build_id` into its own staging table (full: CTAS; incremental:
    clone, delete, insert), check the whole staging table and record every result in the builds table.

    Raises DataValidationError naming every blocking failure (a stale source before any CTAS);
    the published table is untouched. Failed checks of severity warn are logged and returned.
    """
    staging = spec.staging_for(build_id)
    plan = plan_build(client, spec, run_date, full_refresh=full_refresh)
    builds.start(spec.name, build_id, staging, run_date, utc_now(), mode=plan.mode, window_start=plan.window_start)
    results: list[CheckResult] = []
    if spec.checks.freshness is not None:
        results.append(check_freshness(client, spec, run_date))
        _reject_if_failed(spec, build_id, staging, results, None, builds)
    client.ensure("create_schema", schema=staging.split(".")[0])
    fill_staging(client, spec, staging, run_date, plan)
    fault_point("after_ctas")
    stats = measure(client, spec, staging, run_date, build_id, builds)
    results += table_results(
        stats, spec.checks, max_row_drop_ratio=max_row_drop_ratio, key=ident_list(spec.primary_key),
        not_null=ident_list(_null_columns(spec)),
    )
    _reject_if_failed(spec, build_id, staging, results, stats.row_count, builds)
    fault_point("after_validation")
    return Staged(build_id, staging, stats.row_count, tuple(results), plan)


def plan_build(client: WarehouseClient, spec: TableSpec, run_date: dt.date, *, full_refresh: bool) -> BuildPlan:
    """Full or incremental (incremental.decide), from the published table's and the SELECT's columns; logged
    with the reason, a schema change as a warning."""
    inc = spec.incremental
    if inc is None:
        return decide(None, run_date, full_refresh=full_refresh, published=None, selected=())
    try:
        published = client.describe("describe_table", table=spec.name)
    except ObjectMissingError:
        published = None
    selected = client.describe("describe_select", select_params(run_date, run_date), select=spec.select_sql())
    if inc.key.lower() not in {name.lower() for name, _ in selected}:
        raise ConfigError(f"{spec.name}: incremental.key {inc.key!r} is not a column of its SELECT")
    plan = decide(inc, run_date, full_refresh=full_refresh, published=published, selected=selected)
    if plan.mode == FULL and published is not None and not full_refresh:
        log.warning("%s: full build: %s", spec.name, plan.reason)
    else:
        log.info("%s: %s build: %s", spec.name, plan.mode, plan.reason)
    return plan


def select_params(run_date: dt.date, window_start: dt.date) -> dict[str, str]:
    """The bind parameters of a table's SELECT."""
    return {"run_date": run_date.isoformat(), "window_start": window_start.isoformat()}


def fill_staging(client: WarehouseClient, spec: TableSpec, staging: str, run_date: dt.date, plan: BuildPlan) -> None:
    """Full: CTAS the SELECT. Incremental: clone the published table, delete the rebuilt partitions, insert
    the SELECT's rows into the columns of the same names (the plan checked they are the published table's)."""
    params = {"run_date": run_date.isoformat(), **plan.bind()}
    if plan.mode == FULL:
        client.run("ctas_staging", params, staging=staging, select=spec.select_sql())
        return
    inc = spec.incremental
    assert inc is not None and plan.first_partition is not None
    client.dialect.clone(client, staging, spec.name)
    fault_point("after_clone")
    client.run("delete_partitions", {"first_partition": plan.first_partition}, staging=staging, key=ident(inc.key))
    client.run("insert_staging", params, staging=staging, select=spec.select_sql(),
               columns=ident_list([ident(c, f"{spec.name} column") for c in plan.columns]))


def _reject_if_failed(
    spec: TableSpec, build_id: str, staging: str, results: list[CheckResult], row_count: int | None,
    builds: BuildsTable,
) -> None:
    """Record and log the results when they block or are final (row_count known); raise if any blocks."""
    failures = blocking(results)
    if not failures and row_count is None:
        return
    for result in warnings(results):
        log.warning("%s build %s: check %s (severity warn)", spec.name, build_id, result)
    builds.checked(build_id, results, row_count, utc_now())
    if failures:
        raise DataValidationError(f"{staging} (build {build_id})", failures)


def _null_columns(spec: TableSpec) -> list[str]:
    return list(spec.primary_key) + [c for c in spec.checks.not_null if c not in spec.primary_key]


def check_freshness(client: WarehouseClient, spec: TableSpec, run_date: dt.date) -> CheckResult:
    """The freshness check of `spec`'s source (run before the CTAS)."""
    fresh = spec.checks.freshness
    assert fresh is not None
    (newest, count), = client.run("check_freshness", source=fresh.source, column=fresh.column)
    return freshness_result(fresh, newest if count else None, run_date, spec.checks.severity_of("freshness"))


def measure(
    client: WarehouseClient, spec: TableSpec, staging: str, run_date: dt.date, build_id: str, builds: BuildsTable
) -> TableStats:
    """Everything the checks need: one scan of the staged table for the row count and every per-row
    check, the duplicated keys, one anti-join per relationship, the published row count and the
    row counts of earlier validated builds."""
    checks = spec.checks
    measures, params = count_measures(spec, run_date)
    counts = [int(v or 0) for v in client.run("check_counts", params, table=staging, measures=measures)[0]]
    (duplicates,), = client.run("check_duplicate_keys", table=staging, key_columns=ident_list(spec.primary_key))
    orphans = tuple(
        int(client.run("check_relationship", table=staging, column=r.column, to_table=r.to,
                       to_column=r.to_column)[0][0])
        for r in checks.relationships
    )
    history = builds.history(spec.name, build_id, checks.row_count_anomaly.history) if checks.row_count_anomaly else ()
    n_accepted = len(checks.accepted_values)
    return TableStats(
        row_count=counts[0],
        null_rows=counts[1],
        duplicate_keys=int(duplicates),
        published_rows=published_rows(client, spec.name),
        rejected=tuple(counts[2:2 + n_accepted]),
        orphans=orphans,
        violations=tuple(counts[2 + n_accepted:]),
        history=history,
    )


def count_measures(spec: TableSpec, run_date: dt.date) -> tuple[str, dict[str, object]]:
    """The SELECT list of check_counts and its bind parameters: the row count, the rows with a NULL
    key or not_null column, per accepted_values entry the rows outside the list, per expression
    the rows where it is not TRUE (a NULL result counts as not holding)."""
    checks = spec.checks
    params: dict[str, object] = {"run_date": run_date.isoformat(), **checks.expression_params()}
    measures = ["COUNT(*)", _count_where(" OR ".join(f"{c} IS NULL" for c in _null_columns(spec)))]
    for i, (column, values) in enumerate(checks.accepted_values):
        names = []
        for j, value in enumerate(values):
            params[f"accepted_{i}_{j}"] = value
            names.append(f"%(accepted_{i}_{j})s")
        measures.append(_count_where(f"{column} IS NOT NULL AND {column} NOT IN ({', '.join(names)})"))
    measures += [_count_where(f"NOT COALESCE(({e.sql}), FALSE)") for e in checks.expressions]
    return ", ".join(measures), params


def _count_where(predicate: str) -> str:
    return f"COALESCE(SUM(CASE WHEN {predicate} THEN 1 ELSE 0 END), 0)"


def published_rows(client: WarehouseClient, name: str) -> int | None:
    """The published table's row count; None when nothing is published yet."""
    try:
        (count,), = client.run("row_count", table=name)
    except ObjectMissingError:
        return None
    return int(count)


def table_exists(client: WarehouseClient, name: str) -> bool:
    schema, table = name.split(".")
    (count,), = client.run("table_exists", {"schema": schema, "table": table})
    return bool(count)


def publish(client: WarehouseClient, spec: TableSpec, build_id: str, builds: BuildsTable) -> str:
    """Make the validated build `build_id` the published table, with the spec's comment and grants;
    idempotent. Returns what it did. StaleBuildError: the build cannot be published (stage again).

    A build older than the published one (an earlier run date, e.g. a backfill after a later day, or the
    same date staged earlier by a run that was slower to publish) is never published over it: it is
    recorded `superseded`, its staging table dropped, and the published table stays the newer one.
    (Two publishes in the very same moment can still race between this check and the clone.)"""
    build = builds.get(build_id)
    if build is not None and build.status in (PUBLISHED, SUPERSEDED):
        return "already published" if build.status == PUBLISHED else "superseded by a newer published build"
    if build is None or not build.publishable:
        state = "not recorded" if build is None else ("dropped" if build.dropped else build.status)
        raise StaleBuildError(f"{spec.name}: build {build_id} is {state}, not a validated staged build; "
                              "re-run to stage it again")
    if builds.newer_published(build_id):
        builds.superseded(build_id)
        drop_staging(client, spec, build, builds)
        return "superseded by a newer published build"
    fault_point("before_publish")
    try:
        client.dialect.publish(client, spec.name, build.staging_table)
    except ObjectMissingError as exc:
        raise StaleBuildError(f"{spec.name}: the staging table {build.staging_table} of validated build "
                              f"{build_id} is gone (dropped since validation); re-run to stage it again") from exc
    fault_point("mid_publish")
    if spec.description:
        client.run("table_comment", {"comment": spec.description}, table=spec.name)
    client.dialect.grant(client, spec.name, dict(spec.grants))
    builds.published(build_id, utc_now())
    return "published"


def clear_stale(client: WarehouseClient, spec: TableSpec, builds: BuildsTable, stale_after: dt.timedelta) -> list[str]:
    """Drop the staging tables of `spec`'s builds that are no longer needed (builds.stale_to_drop)."""
    now = utc_now()
    return [build.staging_table for build in stale_to_drop(builds.open_builds(spec.name), now, stale_after)
            if drop_staging(client, spec, build, builds)]


def drop_staging(client: WarehouseClient, spec: TableSpec, build: Build, builds: BuildsTable) -> bool:
    """Drop `build`'s staging table and record it; only a name this spec gives that build's staging table
    (the builds table is a table analysts can write to: a row naming another table must not drop it)."""
    expected = spec.staging_for(build.build_id)
    if build.staging_table.lower() != expected.lower():
        log.warning("%s: build %s names the staging table %r, not %r: not dropped", spec.name, build.build_id,
                    build.staging_table, expected)
        return False
    client.run("drop_table", table=expected)
    builds.dropped(build.build_id, utc_now())
    return True
