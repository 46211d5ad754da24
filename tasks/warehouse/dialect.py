"""The one place where the embedded backend and Snowflake differ: the publish statement, grants,
the session's query tag, bulk loads.

One dialect object per backend, chosen once when the client connects (`client.dialect`);
nothing else in the package asks which backend it is on. Everything else (staging, checks,
comments, build bookkeeping) is the same SQL on both.

- Publish: one atomic statement on both. Snowflake: `CREATE OR REPLACE TABLE t CLONE s COPY
  GRANTS` (the SWAP it replaces moved the published table's grants onto the staging name;
  COPY GRANTS keeps them on `t`, the way Airbyte's Snowflake destination publishes since its SWAP
  bug; dbt's `copy_grants` is the same clause on a CTAS).
  fakesnow has no CLONE: `CREATE OR REPLACE TABLE t AS SELECT * FROM s`, atomic in DuckDB.
- Incremental builds start from the published table: Snowflake `CREATE TABLE s CLONE t` (zero-copy,
  metadata only); fakesnow has no CLONE: `CREATE TABLE s AS SELECT * FROM t`.
- Grants: Snowflake runs the spec's GRANTs; fakesnow has no privileges (GRANT does not parse).
- QUERY_TAG: Snowflake `ALTER SESSION SET QUERY_TAG`; fakesnow implements neither that nor
  QUERY_HISTORY.
- Bulk load: Snowflake PUT to the table's stage + COPY INTO; DuckDB reads the Parquet file.
  `replace_rows` deletes a slice of a table and loads its new rows in one transaction (the
  PUT goes first, outside it: it is no DML), never row by row.

Reads no luigi.cfg section.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.errors import ConfigError
from tasks.warehouse.sql import qualified, string_literal

if TYPE_CHECKING:
    from tasks.warehouse.client import WarehouseClient

log = logging.getLogger(__name__)

Grants = Mapping[str, Sequence[str]]  # privilege (SELECT, ...) -> roles


class Dialect:
    """What differs between backends; every method takes the client that runs the statements."""

    name = ""

    def publish(self, client: WarehouseClient, table: str, staging: str) -> None:
        """Replace `table` by a copy of `staging` in one atomic statement (`staging` stays)."""
        raise NotImplementedError

    def clone(self, client: WarehouseClient, staging: str, table: str) -> None:
        """Create `staging` holding what `table` holds (`table` untouched by what is done to `staging`)."""
        raise NotImplementedError

    def grant(self, client: WarehouseClient, table: str, grants: Grants) -> None:
        """Grant each privilege on `table` to its roles (idempotent)."""
        raise NotImplementedError

    def set_query_tag(self, client: WarehouseClient, tag: str) -> None:
        """Label the session's next statements with `tag` (JSON) in the query history."""
        raise NotImplementedError

    def load_parquet(self, client: WarehouseClient, table: str, path: Path) -> None:
        """Append a Parquet file's rows to `table` (columns matched by name)."""
        raise NotImplementedError

    def replace_rows(
        self, client: WarehouseClient, table: str, path: Path, delete: str, params: Mapping[str, object]
    ) -> None:
        """In one transaction: delete the rows the packaged statement `delete` selects (it takes
        `${table}` and `params`), then load the Parquet file `path` (columns in the table's order)."""
        raise NotImplementedError


class SnowflakeDialect(Dialect):
    """Real Snowflake: CLONE ... COPY GRANTS publishes; GRANT; ALTER SESSION; PUT + COPY loads."""

    name = "snowflake"

    def publish(self, client: WarehouseClient, table: str, staging: str) -> None:
        client.run("publish_clone", table=qualified(table), staging=qualified(staging))

    def clone(self, client: WarehouseClient, staging: str, table: str) -> None:
        client.run("clone_staging", staging=qualified(staging), table=qualified(table))

    def grant(self, client: WarehouseClient, table: str, grants: Grants) -> None:
        for privilege, roles in grants.items():
            for role in roles:
                client.run("grant_table", privilege=privilege, table=qualified(table), role=role)

    def set_query_tag(self, client: WarehouseClient, tag: str) -> None:
        client.run("query_tag", {"tag": tag})

    def load_parquet(self, client: WarehouseClient, table: str, path: Path) -> None:
        # PUT to the table's own stage (@schema.%table), then COPY INTO; the local path is ours
        # (var/), quoted as a string literal all the same.
        schema, name = qualified(table).split(".")
        url = string_literal(f"file://{path.resolve().as_posix()}")
        client.run("put_table_stage", file_url=url, schema=schema, table_name=name)
        client.run("copy_into_table", schema=schema, table_name=name)

    def replace_rows(
        self, client: WarehouseClient, table: str, path: Path, delete: str, params: Mapping[str, object]
    ) -> None:
        # the file's name is unique per load: COPY names it, so a concurrent load's file is not taken
        schema, name = qualified(table).split(".")
        url = string_literal(f"file://{path.resolve().as_posix()}")
        client.run("put_load_file", file_url=url, schema=schema, table_name=name)
        with client.transaction():
            client.run(delete, params, table=qualified(table))
            client.run("copy_load_file", schema=schema, table_name=name, file_name=string_literal(path.name))


class EmbeddedDialect(Dialect):
    """The fakesnow server: CREATE OR REPLACE ... AS SELECT publishes; no privileges, no query history."""

    name = "embedded"

    def publish(self, client: WarehouseClient, table: str, staging: str) -> None:
        client.run("publish_copy", table=qualified(table), staging=qualified(staging))

    def clone(self, client: WarehouseClient, staging: str, table: str) -> None:
        client.run("copy_staging", staging=qualified(staging), table=qualified(table))

    def grant(self, client: WarehouseClient, table: str, grants: Grants) -> None:
        if grants:
            log.debug("%s: grants %s not applied: the embedded warehouse has no privileges", table, dict(grants))

    def set_query_tag(self, client: WarehouseClient, tag: str) -> None:
        log.debug("query tag %s (the embedded warehouse keeps no query history)", tag)

    def load_parquet(self, client: WarehouseClient, table: str, path: Path) -> None:
        client.run("load_parquet_embedded", {"path": str(path.resolve())}, table=qualified(table))

    def replace_rows(
        self, client: WarehouseClient, table: str, path: Path, delete: str, params: Mapping[str, object]
    ) -> None:
        with client.transaction():
            client.run(delete, params, table=qualified(table))
            self.load_parquet(client, table, path)


DIALECTS: dict[str, type[Dialect]] = {"snowflake": SnowflakeDialect, "embedded": EmbeddedDialect}


def dialect_for(backend: str) -> Dialect:
    """The dialect object of `backend` ([warehouse] backend), chosen once per client."""
    try:
        return DIALECTS[backend]()
    except KeyError:
        raise ConfigError(f"[warehouse] backend = {backend!r}; expected one of {sorted(DIALECTS)}") from None
