"""Against a real Snowflake account: the dialect's staging, build ids (comments) and SWAP.

Skipped unless SNOWFLAKE_CONN names an entry of ~/.snowflake/connections.toml (the cloud
cannot run here). Works in a scratch schema that it drops at the end.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tasks.warehouse.client import connect
from tasks.warehouse.dialect import SnowflakeDialect

pytestmark = pytest.mark.integration

CONNECTIONS = Path(os.environ.get("SNOWFLAKE_HOME", Path.home() / ".snowflake")) / "connections.toml"


@pytest.fixture
def snowflake(luigi_cfg):
    if not os.environ.get("SNOWFLAKE_CONN") or not CONNECTIONS.exists():
        pytest.skip("no Snowflake credentials (SNOWFLAKE_CONN and connections.toml)")
    luigi_cfg.set("warehouse", "backend", "snowflake")
    client = connect()
    schema = f"TASKS_IT_{uuid.uuid4().hex[:8]}"
    client.execute(f"CREATE SCHEMA {schema}")
    yield client, schema
    client.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    client.close()


def test_stage_swap_and_build_ids_on_snowflake(snowflake) -> None:
    client, schema = snowflake
    dialect = SnowflakeDialect(f"{schema}.table_updates")
    table, staging = f"{schema}.t", f"{schema}.temp_t"
    dialect.create_staging(client, staging, "SELECT 1 AS k", "build-1", {})
    assert dialect.table_builds(client, table, staging) == (None, "build-1")
    dialect.publish_first(client, table, staging, "build-1")
    assert dialect.table_builds(client, table, staging) == ("build-1", None)
    dialect.create_staging(client, staging, "SELECT 2 AS k", "build-2", {})
    dialect.swap(client, table, staging, ("build-1", "build-2"))
    assert dialect.table_builds(client, table, staging) == ("build-2", "build-1")
    assert client.execute(f"SELECT k FROM {table}") == [(2,)]
