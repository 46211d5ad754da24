"""The one place where the embedded backend and Snowflake differ: staging, the atomic swap, bulk loads.

Snowflake: `ALTER TABLE t SWAP WITH s` is one atomic statement (each DDL commits on its
own, so three renames there would not be atomic). fakesnow has no SWAP, but DuckDB DDL is
transactional: three renames in one transaction exchange the tables atomically.

Every staged table carries its build id, so that after a crash a re-run can tell which
table holds the validated build. On Snowflake that is the table comment, which is part of
the table and moves with it through SWAP. fakesnow keeps comments by table name in another
database, which a DuckDB transaction cannot write together with the tables; so the
embedded backend records build ids in a `table_builds` table beside the marker table and
updates it in the same transaction as the CTAS and the renames.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.errors import WarehouseError
from tasks.faults import crash_point
from tasks.warehouse.client import TABLE_NOT_FOUND, WarehouseClient
from tasks.warehouse.sql import qualified


def _builds_table(marker: str) -> str:
    return f"{qualified(marker).split('.')[0]}.table_builds"


def create_staging(
    client: WarehouseClient, staging: str, select: str, build_id: str, params: Mapping[str, Any], marker: str
) -> None:
    """CREATE OR REPLACE `staging` from `select`, recording `build_id` as the table's identity."""
    staging = qualified(staging)
    bind = {**params, "build_id": build_id}
    if client.backend == "snowflake":
        client.run("ctas_staging", bind, staging=staging, select=select)
        return
    builds = _builds_table(marker)
    client.ensure("builds_create", builds=builds)
    with client.transaction():
        client.run("ctas_staging_embedded", bind, staging=staging, select=select)
        _record_build(client, builds, staging, build_id)


def _record_build(client: WarehouseClient, builds: str, table: str, build_id: str | None) -> None:
    params = {"table_name": table, "build_id": build_id}
    client.run("builds_clear", params, builds=builds)
    client.run("builds_insert", params, builds=builds)


def table_builds(client: WarehouseClient, table: str, staging: str, marker: str) -> tuple[str | None, str | None]:
    """The build ids held by the published table and the staging table (None: absent or unknown)."""
    schema, name = qualified(table).split(".")
    staging_name = qualified(staging).split(".")[1]
    present = {
        str(t).upper(): comment
        for t, comment in client.run("table_comment", {"schema": schema, "table": name, "staging": staging_name})
    }
    if client.backend == "embedded":
        try:
            rows = client.run(
                "builds_lookup", {"table": f"{schema}.{name}", "staging": f"{schema}.{staging_name}"},
                builds=_builds_table(marker),
            )
        except WarehouseError as exc:
            if getattr(exc.__cause__, "errno", None) != TABLE_NOT_FOUND:
                raise
            rows = []
        recorded = {str(t).split(".")[1]: b for t, b in rows}
        present = {t: recorded.get(t) for t in present}
    return present.get(name.upper()) or None, present.get(staging_name.upper()) or None


def swap(
    client: WarehouseClient, table: str, staging: str, builds: tuple[str | None, str | None], marker: str
) -> None:
    """Exchange `table` and `staging` atomically (both exist); `builds` are their build ids before."""
    table, staging = qualified(table), qualified(staging)
    if client.backend == "snowflake":
        client.run("swap_snowflake", table=table, staging=staging)
        return
    schema, name = table.split(".")
    parking = f"{schema}.{name}__swap"
    builds_table = _builds_table(marker)
    with client.transaction():
        client.run("rename", source=table, dest=parking)
        crash_point("mid_swap")
        client.run("rename", source=staging, dest=table)
        client.run("rename", source=parking, dest=staging)
        _record_build(client, builds_table, table, builds[1])
        _record_build(client, builds_table, staging, builds[0])


def publish_first(client: WarehouseClient, table: str, staging: str, build_id: str | None, marker: str) -> None:
    """The first publish, when `table` does not exist yet: one rename (atomic on both backends)."""
    table, staging = qualified(table), qualified(staging)
    if client.backend == "snowflake":
        client.run("rename", source=staging, dest=table)
        return
    builds_table = _builds_table(marker)
    with client.transaction():
        client.run("rename", source=staging, dest=table)
        _record_build(client, builds_table, table, build_id)
        _record_build(client, builds_table, staging, None)


def load_parquet(client: WarehouseClient, table: str, path: Path) -> None:
    """Append a Parquet file's rows to `table` (columns matched by name)."""
    table = qualified(table)
    if client.backend == "snowflake":
        # PUT to the table's stage, then COPY INTO; the path is ours (var/), never user input.
        stage = f"@%{table.split('.')[1]}"
        client.execute(f"PUT 'file://{path.resolve()}' {stage} OVERWRITE = TRUE", name="put")
        client.execute(
            f"COPY INTO {table} FROM {stage} FILE_FORMAT = (TYPE = PARQUET) "
            "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE",
            name="copy_into",
        )
        return
    # Embedded: DuckDB reads the file directly (FACTS.md: 10M rows in about a second).
    client.execute(
        f"INSERT INTO {table} SELECT * FROM read_parquet(%(path)s)", {"path": str(path.resolve())}, name="load"
    )
