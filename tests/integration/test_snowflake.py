"""Against a real Snowflake account: a role's SELECT survives publishes, spec grants and the comment apply.

Skipped unless SNOWFLAKE_CONN names an entry of ~/.snowflake/connections.toml (the cloud
cannot run here). Works in a scratch schema that it drops at the end. The role granted by hand
is SNOWFLAKE_TEST_ROLE (default PUBLIC, which every account has); SNOWFLAKE_SPEC_ROLE, when set,
is declared in the spec's `grants` as well.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import pytest

from tasks.elt import steps
from tasks.elt.builds import BuildsTable
from tasks.elt.specs import parse_specs
from tasks.warehouse.client import connect

pytestmark = pytest.mark.integration

CONNECTIONS = Path(os.environ.get("SNOWFLAKE_HOME", Path.home() / ".snowflake")) / "connections.toml"
DAY = dt.date(2026, 6, 30)


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


def select_grantees(client, table: str) -> set[str]:
    rows = client.execute(f"SHOW GRANTS ON TABLE {table}")
    return {str(r[5]).upper() for r in rows if str(r[1]).upper() == "SELECT"}  # privilege, ..., grantee_name


def test_a_roles_select_survives_two_publishes(snowflake, tmp_path: Path) -> None:
    client, schema = snowflake
    hand_role = os.environ.get("SNOWFLAKE_TEST_ROLE", "PUBLIC").upper()
    spec_role = os.environ.get("SNOWFLAKE_SPEC_ROLE", "").upper()
    (tmp_path / "t.sql").write_text("SELECT SEQ4() AS k, %(run_date)s::DATE AS d FROM TABLE(GENERATOR(ROWCOUNT => 3))")
    grants = f'grants = {{ select = ["{spec_role}"] }}' if spec_role else ""
    (spec,) = parse_specs(f"""
[[table]]
name = "{schema}.t"
primary_key = ["k"]
sql = "t.sql"
description = "integration test table"
{grants}
[table.checks]
expressions = ["d = %(run_date)s::DATE"]
""", tmp_path)
    builds = BuildsTable(client, f"{schema}.elt_builds")
    published = []
    for i, day in enumerate([DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)]):
        build_id = steps.new_build_id(day)
        steps.stage_validated(client, spec, day, build_id, builds, max_row_drop_ratio=0.5)
        assert steps.publish(client, spec, build_id, builds) == "published"
        published.append(build_id)
        if i == 0:
            client.execute(f"GRANT SELECT ON TABLE {spec.name} TO ROLE {hand_role}")
        assert client.execute(f"SELECT DISTINCT d FROM {spec.name}") == [(day,)]
        # publishes 2 and 3 replaced the table the role was granted on: the grant must still be there
        assert {hand_role} | ({spec_role} if spec_role else set()) <= select_grantees(client, spec.name), i
    (comment,), = client.execute(
        "SELECT comment FROM information_schema.tables WHERE table_schema = %(s)s AND table_name = 'T'", {"s": schema})
    assert comment == "integration test table"
    assert builds.get(published[-1]).status == "published"
