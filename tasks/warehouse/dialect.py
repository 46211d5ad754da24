"""The one place where the embedded backend and Snowflake differ: the atomic swap and bulk loads.

Snowflake: `ALTER TABLE t SWAP WITH s` is one atomic statement (each DDL commits on its
own, so three renames there would not be atomic). fakesnow has no SWAP, but DuckDB DDL is
transactional: three renames in one transaction exchange the tables atomically.
"""

from __future__ import annotations

from pathlib import Path

from tasks.warehouse.client import WarehouseClient
from tasks.warehouse.sql import qualified


def swap(client: WarehouseClient, table: str, staging: str) -> None:
    """Exchange `table` and `staging` atomically (both exist; both are schema-qualified)."""
    table, staging = qualified(table), qualified(staging)
    if client.backend == "snowflake":
        client.run("swap_snowflake", table=table, staging=staging)
        return
    schema, name = table.split(".")
    parking = f"{schema}.{name}__swap"
    with client.transaction():
        client.run("rename", source=table, dest=parking)
        client.run("rename", source=staging, dest=table)
        client.run("rename", source=parking, dest=staging)


def publish_first(client: WarehouseClient, table: str, staging: str) -> None:
    """The first publish, when `table` does not exist yet: one rename (atomic on both backends)."""
    client.run("rename", source=qualified(staging), dest=qualified(table))


def load_parquet(client: WarehouseClient, table: str, path: Path) -> None:
    """Append a Parquet file's rows to `table` (columns matched by name)."""
    table = qualified(table)
    if client.backend == "snowflake":
        # PUT to the table's stage, then COPY INTO; the path is ours (var/), never user input.
        client.execute(f"PUT 'file://{path.resolve()}' @%{table.split('.')[1]} OVERWRITE = TRUE", name="put")
        client.execute(
            f"COPY INTO {table} FROM @%{table.split('.')[1]} FILE_FORMAT = (TYPE = PARQUET) "
            "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE",
            name="copy_into",
        )
        return
    # Embedded: DuckDB reads the file directly (FACTS.md: 10M rows in about a second).
    client.execute(
        f"INSERT INTO {table} SELECT * FROM read_parquet(%(path)s)", {"path": str(path.resolve())}, name="load"
    )
