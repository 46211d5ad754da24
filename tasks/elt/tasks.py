"""Luigi classes of the ELT pipeline: stage -> check -> publish, one pair of tasks per table spec.

Reads [elt] (table_specs, max_row_drop_ratio, builds_table, stale_build_hours) and [warehouse].
For each table in the spec file: `StageTable` builds the day's build into its own staging table
`<schema>.temp_<table>__<build>` (full, or incremental on a clone of the published table) and
checks it; `PublishTable` publishes exactly that build (comment and grants included) and writes
the marker row. A table's staging waits for the publish of every table it reads (graph.py: its
SELECT plus `depends_on`), nothing else: a failed table stops only the tables that read it, and
`--workers N` builds independent tables side by side. The listed order is Luigi's `priority`.

`full_refresh` (`--full-refresh` on BuildAllTables, MauSummary and RunAll, passed down) forces a
full build: such a task is complete when the day's build is a full one, so it rebuilds an
incremental table on a day already published, once.

Idempotence keys (marker table rows): `stage:<table>:<date>` and `publish:<table>:<date>`,
each carrying the build id; the builds table ([elt] builds_table) says where that build is.
Statements run with QUERY_TAG {"project", "task", "table", "date", "build_id"}.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import luigi

from tasks import config
from tasks.elt import checks, graph, steps
from tasks.elt.builds import PUBLISHED, SUPERSEDED, BuildsTable
from tasks.elt.incremental import FULL
from tasks.elt.specs import TableSpec, load_specs
from tasks.errors import CHECK_WARNING, ConfigError, StaleBuildError, WarehouseError
from tasks.faults import fault_point
from tasks.params import RunDateParameter
from tasks.warehouse import MarkerTableTarget, WarehouseClient, marker_days, session

log = logging.getLogger(__name__)

STALE_BUILD_ATTEMPTS = 3


def table_specs() -> list[TableSpec]:
    """The configured table specs, in build order."""
    return load_specs(config.resolve_path(config.EltConfig().table_specs))


def table_graph() -> dict[str, tuple[str, ...]]:
    """Per table (lower case, listed order) the tables it reads; ConfigError on a cycle."""
    return graph.dependencies(table_specs())


def spec_for(name: str) -> TableSpec:
    """The spec of table `name`."""
    for spec in table_specs():
        if spec.name.lower() == name.lower():
            return spec
    raise ConfigError(f"table {name} is not in {config.EltConfig().table_specs}")


def full_refresh_parameter() -> luigi.BoolParameter:
    """`--full-refresh` of BuildAllTables, MauSummary and RunAll, passed down to every table task."""
    return luigi.BoolParameter(
        default=False, parsing=luigi.BoolParameter.IMPLICIT_PARSING,
        description="Build incremental tables in full even on a day already published (complete once the day's "
        "build is a full one).",
    )


def builds_table(client: WarehouseClient) -> BuildsTable:
    return BuildsTable(client, config.EltConfig().builds_table)


class _TableTask(luigi.Task):
    """A step of one table's build for one day."""

    date = RunDateParameter()
    table = luigi.Parameter(description="schema.table from the table specs")
    full_refresh = full_refresh_parameter()

    @property
    def owner_email(self) -> str | None:
        """Luigi's per-task error-mail receiver: the spec's owner when it is an address."""
        owner = spec_for(self.table).owner
        return owner if "@" in owner else None

    @property
    def priority(self) -> int:  # type: ignore[override]  # luigi's class attribute, per table here
        """Luigi's priority: the listed order (the first table first when several could run)."""
        names = [s.name.lower() for s in table_specs()]
        return len(names) - names.index(self.table.lower()) if self.table.lower() in names else 0

    @contextmanager
    def tagged(self, client: WarehouseClient, spec: TableSpec, build_id: str) -> Iterator[None]:
        """Label the block's statements with this task, table, date and build in QUERY_HISTORY."""
        with client.query_tag(task=self.task_family, table=spec.name, date=self.date.isoformat(), build_id=build_id):
            yield

    def stage(self, client: WarehouseClient, spec: TableSpec, marker: MarkerTableTarget) -> str:
        """Stage and check a new build, record it in the stage marker; return its build id."""
        build_id = steps.new_build_id(self.date)
        ratio = spec.checks.max_row_drop_ratio
        with self.tagged(client, spec, build_id):
            staged = steps.stage_validated(
                client, spec, self.date, build_id, builds_table(client),
                max_row_drop_ratio=config.EltConfig().max_row_drop_ratio if ratio is None else ratio,
                full_refresh=self.full_refresh,
            )
            log.info("%s: staged build %s in %s validated: %s rows", spec.name, build_id, staged.staging,
                     staged.row_count)
            warned = checks.warnings(staged.results)
            if warned:
                # tasks/ops/alerts.py listens (importing `tasks` registers it); the publish goes on
                self.trigger_event(CHECK_WARNING, self, "; ".join(str(r) for r in warned))
            marker.touch(client, build_id)
        fault_point("after_stage_marker")
        return build_id


class StageTable(_TableTask):
    """Stage the table's SELECT as a new build in its own staging table and check it.

    Output: marker row `stage:<table>:<date>` whose build is validated (staging table still
    there) or already published, as the builds table says. Re-running stages a new build;
    the published table is never touched here.
    """

    def requires(self) -> list[PublishTable]:
        """The publish of every table this one reads (its SELECT and depends_on), nothing else."""
        reads = table_graph().get(self.table.lower(), ())
        return [PublishTable(date=self.date, table=name, full_refresh=self.full_refresh) for name in reads]

    def output(self) -> StagedBuildTarget:
        return StagedBuildTarget(spec_for(self.table), self.date, full_only=self.full_refresh)

    def run(self) -> None:
        spec = spec_for(self.table)
        with session() as client:
            self.stage(client, spec, self.output().marker)


class StagedBuildTarget(luigi.Target):
    """A validated build recorded in the stage marker and still publishable (or already published, or
    superseded by a newer published build)."""

    def __init__(self, spec: TableSpec, date: dt.date, *, full_only: bool = False) -> None:
        self.spec = spec
        self.full_only = full_only  # --full-refresh: an incremental build does not count
        self.marker = MarkerTableTarget(f"stage:{spec.name.lower()}:{date.isoformat()}", spec.name)

    def exists(self) -> bool:
        with session() as client:
            build_id = self.marker.build_id(client)
            if build_id is None:
                return False
            build = builds_table(client).get(build_id)
            if build is None or (self.full_only and build.mode != FULL):
                return False
            # superseded: a newer build of the table is published, so this date has nothing left to publish
            return build.status in (PUBLISHED, SUPERSEDED) or build.publishable


class FullBuildMarkerTarget(MarkerTableTarget):
    """The publish marker of a `--full-refresh` task: exists when the build it names is a full build."""

    def exists(self) -> bool:
        with session() as client:
            build_id = self.build_id(client)
            build = builds_table(client).get(build_id) if build_id is not None else None
            return build is not None and build.mode == FULL


class PublishTable(_TableTask):
    """Publish the validated build in one atomic statement, then write the publish marker.

    Output: marker row `publish:<table>:<date>`. A crash after the publish and before the
    marker is safe: the builds table then says the build is published, and the re-run only
    writes the marker; a crash inside the publish leaves the old table, and the re-run
    publishes the same validated build again.
    """

    def requires(self) -> StageTable:
        return StageTable(date=self.date, table=self.table, full_refresh=self.full_refresh)

    def output(self) -> MarkerTableTarget:
        spec = spec_for(self.table)
        target = FullBuildMarkerTarget if self.full_refresh else MarkerTableTarget
        return target(f"publish:{spec.name.lower()}:{self.date.isoformat()}", spec.name)

    def run(self) -> None:
        spec = spec_for(self.table)
        stage_marker = self.requires().output().marker
        with session() as client:
            build_id = stage_marker.build_id(client)
            if build_id is None:
                raise WarehouseError(f"{spec.name}: no validated build recorded for {self.date}")
            for attempt in range(1, STALE_BUILD_ATTEMPTS + 1):
                try:
                    with self.tagged(client, spec, build_id):
                        action = steps.publish(client, spec, build_id, builds_table(client))
                    break
                except StaleBuildError:
                    # the validated build's staging table is gone (dropped as stale after a very long
                    # pause, or by hand): stage and check a new build, then publish that one
                    if attempt == STALE_BUILD_ATTEMPTS:
                        raise
                    log.warning("%s: build %s can no longer be published; staging again", spec.name, build_id)
                    build_id = self.stage(client, spec, stage_marker)
            fault_point("after_publish")
            log.info("%s: build %s %s", spec.name, build_id, action)
            with self.tagged(client, spec, build_id):
                self.output().touch(client, build_id)
                self.clear_stale(client, spec)

    def clear_stale(self, client: WarehouseClient, spec: TableSpec) -> None:
        """Drop staging tables no longer needed; a failure here is logged, never fails the publish."""
        stale_after = dt.timedelta(hours=config.EltConfig().stale_build_hours)
        try:
            dropped = steps.clear_stale(client, spec, builds_table(client), stale_after)
        except WarehouseError as exc:
            log.warning("%s: stale staging tables not dropped (the next publish tries again): %s", spec.name, exc)
            return
        if dropped:
            log.info("%s: dropped %d staging table(s) no longer needed: %s", spec.name, len(dropped), dropped)


class MauSummary(luigi.WrapperTask):
    """`analytics.mau_summary` for `date`, staged, validated and published (and the tables it reads)."""

    date = RunDateParameter()
    full_refresh = full_refresh_parameter()

    def requires(self) -> PublishTable:
        return PublishTable(date=self.date, table="analytics.mau_summary", full_refresh=self.full_refresh)

    @classmethod
    def bulk_complete(cls, parameter_tuples: Iterable[object]) -> list[dt.date]:
        """The run dates whose MAU publish is done (one marker-table query for the whole range: RangeDaily)."""
        return published_days(cls, parameter_tuples, lambda: ["analytics.mau_summary"])


class BuildAllTables(luigi.WrapperTask):
    """Every table of the spec file for `date`, each once the tables it reads are published."""

    date = RunDateParameter()
    full_refresh = full_refresh_parameter()

    def requires(self) -> list[PublishTable]:
        return [PublishTable(date=self.date, table=spec.name, full_refresh=self.full_refresh)
                for spec in table_specs()]

    @classmethod
    def bulk_complete(cls, parameter_tuples: Iterable[object]) -> list[dt.date]:
        """The run dates whose every table is published (one marker-table query for the whole range)."""
        return published_days(cls, parameter_tuples, lambda: [s.name for s in table_specs()])


def published_days(
    cls: Callable[..., luigi.Task], parameter_tuples: Iterable[object], tables: Callable[[], list[str]]
) -> list[dt.date]:
    """For a bulk_complete: the dates among `parameter_tuples` (RangeDaily passes dates) on which every table
    of `tables()` has its publish marker. `cls` may be a functools.partial of the task class (RangeDaily's
    `--of-params`): with full_refresh, only instance-by-instance checks can tell, so they are made."""
    dates = [_as_date(p) for p in parameter_tuples]
    if not dates:
        return []
    if getattr(cls(date=dates[0]), "full_refresh", False):
        return [d for d in dates if cls(date=d).complete()]
    with session() as client:
        done = marker_days(client, "publish", tables(), dates)
    return [d for d in dates if d in done]


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, tuple | list) and len(value) == 1:
        return _as_date(value[0])
    return dt.date.fromisoformat(str(value))
