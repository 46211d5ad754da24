"""Luigi classes of the ELT pipeline: stage -> validate -> swap, one pair of tasks per table spec.

Reads [elt] (table_specs, max_row_drop_ratio) and [warehouse]. For each table in the spec
file, in order: `StageTable` builds `<schema>.temp_<table>` with CTAS and validates it;
`PublishTable` swaps it in atomically and writes the marker row. Table N's staging waits
for table N-1's publish, as in the original DAG.

Idempotence keys (marker table rows): `stage:<table>:<date>` and `publish:<table>:<date>`,
each carrying the build id that is also the staged table's comment.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import luigi

from tasks import config
from tasks.elt import steps as tables
from tasks.elt.checks import table_failures
from tasks.elt.specs import TableSpec, load_specs
from tasks.errors import ConfigError, DataValidationError, StaleBuildError, WarehouseError
from tasks.faults import crash_point
from tasks.params import RunDateParameter
from tasks.warehouse import MarkerTableTarget, WarehouseClient, session
from tasks.warehouse.sql import ident_list

log = logging.getLogger(__name__)

STALE_BUILD_ATTEMPTS = 3


def table_specs() -> list[TableSpec]:
    """The configured table specs, in build order."""
    return load_specs(config.resolve_path(config.elt().table_specs))


def spec_for(name: str) -> tuple[TableSpec, TableSpec | None]:
    """The spec of table `name` and the one listed before it (None for the first)."""
    specs = table_specs()
    for i, spec in enumerate(specs):
        if spec.name.lower() == name.lower():
            return spec, specs[i - 1] if i else None
    raise ConfigError(f"table {name} is not in {config.elt().table_specs}")


class _TableTask(luigi.Task):
    """A step of one table's build for one day."""

    date = RunDateParameter()
    table = luigi.Parameter(description="schema.table from the table specs")

    @property
    def owner_email(self) -> str | None:
        """Luigi's per-task error-mail receiver: the spec's owner when it is an address."""
        owner = spec_for(self.table)[0].owner
        return owner if "@" in owner else None


class StageTable(_TableTask):
    """CTAS the table's SELECT into its staging table and validate it.

    Output: marker row `stage:<table>:<date>` whose build id is found on the staging table
    (not yet swapped) or on the published one (already swapped). Re-running rebuilds the
    staging table from scratch; the published table is never touched here.
    """

    def requires(self):  # noqa: ANN201 (luigi's protocol)
        _, previous = spec_for(self.table)
        return PublishTable(date=self.date, table=previous.name) if previous else []

    def output(self) -> StagedBuildTarget:
        return StagedBuildTarget(spec_for(self.table)[0], self.date)

    def run(self) -> None:
        spec, _ = spec_for(self.table)
        with session() as client:
            stage_validated(client, spec, self.date, self.output().marker)


def stage_validated(client: WarehouseClient, spec: TableSpec, date: dt.date, marker: MarkerTableTarget) -> str:
    """CTAS a new build of `spec` into its staging table, check it, record it; return its build id.

    Raises DataValidationError naming every failed check; the published table is untouched.
    """
    build_id = f"{date.isoformat()}/{uuid.uuid4().hex[:12]}"
    tables.stage(client, spec, date, build_id)
    crash_point("after_ctas")
    stats = tables.measure(client, spec)
    ratio = spec.checks.max_row_drop_ratio
    failures = table_failures(
        stats,
        min_rows=spec.checks.min_rows,
        max_row_drop_ratio=config.elt().max_row_drop_ratio if ratio is None else ratio,
        key=ident_list(spec.primary_key),
        not_null=ident_list(list(spec.primary_key) + list(spec.checks.not_null)),
    )
    if failures:
        raise DataValidationError(f"{spec.staging_name} (build {build_id})", failures)
    crash_point("after_validation")
    log.info("%s: staged build %s validated: %s rows", spec.name, build_id, stats.row_count)
    marker.touch(client, build_id)
    crash_point("after_stage_marker")
    return build_id


class StagedBuildTarget(luigi.Target):
    """A validated build recorded in the marker table and still present in one of the two tables."""

    def __init__(self, spec: TableSpec, date: dt.date):
        self.spec = spec
        self.marker = MarkerTableTarget(f"stage:{spec.name.lower()}:{date.isoformat()}", spec.name)

    def exists(self) -> bool:
        with session() as client:
            build_id = self.marker.build_id(client)
            if build_id is None:
                return False
            return build_id in tables.builds(client, self.spec)


class PublishTable(_TableTask):
    """Swap the validated staging table in atomically, then write the publish marker.

    Output: marker row `publish:<table>:<date>`. A crash after the swap and before the
    marker is safe: the published table then carries the build id, and the re-run only
    writes the marker instead of swapping the old version back.
    """

    def requires(self) -> StageTable:
        return StageTable(date=self.date, table=self.table)

    def output(self) -> MarkerTableTarget:
        spec, _ = spec_for(self.table)
        return MarkerTableTarget(f"publish:{spec.name.lower()}:{self.date.isoformat()}", spec.name)

    def run(self) -> None:
        spec, _ = spec_for(self.table)
        stage_marker = self.requires().output().marker
        with session() as client:
            build_id = stage_marker.build_id(client)
            if build_id is None:
                raise WarehouseError(f"{spec.name}: no validated build recorded for {self.date}")
            for attempt in range(1, STALE_BUILD_ATTEMPTS + 1):
                try:
                    action = tables.publish(client, spec, build_id)
                    break
                except StaleBuildError:
                    # Another day's run staged the same table after ours was validated (two days
                    # built at once). Build and validate ours again, then swap it right away.
                    if attempt == STALE_BUILD_ATTEMPTS:
                        raise
                    log.warning("%s: build %s was replaced in staging by another run; staging again",
                                spec.name, build_id)
                    build_id = stage_validated(client, spec, self.date, stage_marker)
            crash_point("after_swap")
            log.info("%s: build %s %s", spec.name, build_id, action)
            self.output().touch(client, build_id)


class MauSummary(luigi.WrapperTask):
    """`analytics.mau_summary` for `date`, staged, validated and published."""

    date = RunDateParameter()

    def requires(self) -> PublishTable:
        return PublishTable(date=self.date, table="analytics.mau_summary")


class BuildAllTables(luigi.WrapperTask):
    """Every table of the spec file for `date`; requiring the last one builds all, in order."""

    date = RunDateParameter()

    def requires(self) -> list[PublishTable]:
        return [PublishTable(date=self.date, table=spec.name) for spec in table_specs()]
