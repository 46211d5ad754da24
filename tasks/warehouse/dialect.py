"""The one place where the embedded backend and Snowflake differ: staging, the atomic swap, bulk loads.

One dialect object per backend, chosen once when the client connects (`client.dialect`);
nothing else in the package asks which backend it is on.

Snowflake: `ALTER TABLE t SWAP WITH s` is one atomic statement (each DDL commits on its
own, so three renames there would not be atomic). fakesnow has no SWAP, but DuckDB DDL is
transactional: three renames in one transaction exchange the tables atomically.

Every staged table carries its build id, so that after a crash a re-run can tell which
table holds the validated build. On Snowflake that is the table comment, which is part of
the table and moves with it through SWAP. fakesnow keeps comments by table name in another
database, which a DuckDB transaction cannot write together with the tables; so the
embedded backend records build ids in a `table_builds` table beside the marker table and
updates it in the same transaction as the CTAS and the renames. Reads no luigi.cfg section:
the client passes the marker table's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.errors import ConfigError, ObjectMissingError
from tasks.faults import crash_point
from tasks.warehouse.sql import qualified

if TYPE_CHECKING:
    from tasks.warehouse.client import WarehouseClient

Builds = tuple[str | None, str | None]  # build ids of (published table, staging table); None: absent


class Dialect:
    """What differs between backends; every method takes the client that runs the statements."""

    name = ""

    def __init__(self, marker_table: str):
        self.marker_table = qualified(marker_table)

    def create_staging(
        self, client: WarehouseClient, staging: str, select: str, build_id: str, params: Mapping[str, Any]
    ) -> None:
        """CREATE OR REPLACE `staging` from `select`, recording `build_id` as the table's identity."""
        raise NotImplementedError

    def table_builds(self, client: WarehouseClient, table: str, staging: str) -> Builds:
        """The build ids held by the published table and the staging table (None: absent or unknown)."""
        schema, name = qualified(table).split(".")
        staging_name = qualified(staging).split(".")[1]
        comments = {
            str(t).upper(): comment
            for t, comment in client.run("table_comment", {"schema": schema, "table": name, "staging": staging_name})
        }
        present = self._recorded_builds(client, f"{schema}.{name}", f"{schema}.{staging_name}", comments)
        return present.get(name.upper()) or None, present.get(staging_name.upper()) or None

    def _recorded_builds(
        self, client: WarehouseClient, table: str, staging: str, comments: dict[str, str | None]
    ) -> dict[str, str | None]:
        """Build id per present table (upper-case name), from the comments read by table_builds."""
        return comments

    def swap(self, client: WarehouseClient, table: str, staging: str, builds: Builds) -> None:
        """Exchange `table` and `staging` atomically (both exist); `builds` are their build ids before."""
        raise NotImplementedError

    def publish_first(self, client: WarehouseClient, table: str, staging: str, build_id: str | None) -> None:
        """The first publish, when `table` does not exist yet: one rename (atomic on both backends)."""
        raise NotImplementedError

    def load_parquet(self, client: WarehouseClient, table: str, path: Path) -> None:
        """Append a Parquet file's rows to `table` (columns matched by name)."""
        raise NotImplementedError


class SnowflakeDialect(Dialect):
    """Real Snowflake: the build id is the table comment; SWAP WITH publishes; PUT + COPY loads."""

    name = "snowflake"

    def create_staging(self, client, staging, select, build_id, params):  # noqa: ANN001 (see Dialect)
        client.run("ctas_staging", {**params, "build_id": build_id}, staging=qualified(staging), select=select)

    def swap(self, client, table, staging, builds):  # noqa: ANN001 (see Dialect)
        client.run("swap_snowflake", table=qualified(table), staging=qualified(staging))

    def publish_first(self, client, table, staging, build_id):  # noqa: ANN001 (see Dialect)
        client.run("rename", source=qualified(staging), dest=qualified(table))

    def load_parquet(self, client, table, path):  # noqa: ANN001 (see Dialect)
        # PUT to the table's stage, then COPY INTO; the path is ours (var/), never user input.
        table = qualified(table)
        stage = f"@%{table.split('.')[1]}"
        client.execute(f"PUT 'file://{path.resolve()}' {stage} OVERWRITE = TRUE", name="put")
        client.execute(
            f"COPY INTO {table} FROM {stage} FILE_FORMAT = (TYPE = PARQUET) "
            "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE",
            name="copy_into",
        )


class EmbeddedDialect(Dialect):
    """The fakesnow server: build ids in a `table_builds` table; renames in one transaction publish."""

    name = "embedded"

    @property
    def builds_table(self) -> str:
        return f"{self.marker_table.split('.')[0]}.table_builds"

    def create_staging(self, client, staging, select, build_id, params):  # noqa: ANN001 (see Dialect)
        staging = qualified(staging)
        client.ensure("builds_create", builds=self.builds_table)
        with client.transaction():
            client.run("ctas_staging_embedded", {**params, "build_id": build_id}, staging=staging, select=select)
            self._record_build(client, staging, build_id)

    def _recorded_builds(self, client, table, staging, comments):  # noqa: ANN001 (see Dialect)
        try:
            rows = client.run("builds_lookup", {"table": table, "staging": staging}, builds=self.builds_table)
        except ObjectMissingError:
            rows = []  # no build recorded yet
        recorded = {str(t).split(".")[1]: b for t, b in rows}
        return {t: recorded.get(t) for t in comments}

    def swap(self, client, table, staging, builds):  # noqa: ANN001 (see Dialect)
        table, staging = qualified(table), qualified(staging)
        schema, name = table.split(".")
        parking = f"{schema}.{name}__swap"
        with client.transaction():
            client.run("rename", source=table, dest=parking)
            crash_point("mid_swap")
            client.run("rename", source=staging, dest=table)
            client.run("rename", source=parking, dest=staging)
            self._record_build(client, table, builds[1])
            self._record_build(client, staging, builds[0])

    def publish_first(self, client, table, staging, build_id):  # noqa: ANN001 (see Dialect)
        table, staging = qualified(table), qualified(staging)
        with client.transaction():
            client.run("rename", source=staging, dest=table)
            self._record_build(client, table, build_id)
            self._record_build(client, staging, None)

    def load_parquet(self, client, table, path):  # noqa: ANN001 (see Dialect)
        # DuckDB reads the file directly (FACTS.md: 10M rows in about a second).
        client.execute(
            f"INSERT INTO {qualified(table)} SELECT * FROM read_parquet(%(path)s)",
            {"path": str(path.resolve())},
            name="load",
        )

    def _record_build(self, client: WarehouseClient, table: str, build_id: str | None) -> None:
        params = {"table_name": table, "build_id": build_id}
        client.run("builds_clear", params, builds=self.builds_table)
        client.run("builds_insert", params, builds=self.builds_table)


DIALECTS: dict[str, type[Dialect]] = {"snowflake": SnowflakeDialect, "embedded": EmbeddedDialect}


def dialect_for(backend: str, marker_table: str) -> Dialect:
    """The dialect object of `backend` ([warehouse] backend), chosen once per client."""
    try:
        return DIALECTS[backend](marker_table)
    except KeyError:
        raise ConfigError(f"[warehouse] backend = {backend!r}; expected one of {sorted(DIALECTS)}") from None
