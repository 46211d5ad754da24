"""Fixtures for tests on the embedded warehouse: one real fakesnow server per test session,
and a fresh database per test (so tests never see each other's tables)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from tasks.demo import seed
from tasks.warehouse import embedded
from tasks.warehouse.client import WarehouseClient, connect

REAP_AFTER = 2.0  # seconds before the server rolls back a dead client's open transaction


@pytest.fixture(scope="session")
def warehouse_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("warehouse")
    embedded.ensure_running(directory, reap_after=REAP_AFTER)
    yield directory
    embedded.stop(directory)


@pytest.fixture
def warehouse(luigi_cfg, warehouse_dir: Path) -> WarehouseClient:
    """A client on a fresh database of the session's embedded server (also set in luigi config)."""
    luigi_cfg.set("warehouse", "embedded_dir", warehouse_dir)
    luigi_cfg.set("warehouse", "database", f"T_{uuid.uuid4().hex[:10]}")
    luigi_cfg.set("warehouse", "embedded_network_timeout", 30)
    client = connect()
    yield client
    client.close()


def seed_raw(
    client: WarehouseClient, tmp: Path, sessions: int = 5_000, seed_value: int = 7
) -> tuple[pa.Table, pa.Table]:
    """Load deterministic raw tables and return them (for independent computation)."""
    tables = seed.demo_tables(sessions, seed_value)
    seed.load(client, *tables, tmp / "seed")
    return tables


def expected_mau(sessions_tbl: pa.Table, channels_tbl: pa.Table, run_date: dt.date) -> dict[str, int]:
    """MAU computed with pandas over the raw rows: not the SQL under test."""
    s = sessions_tbl.to_pandas()
    u = channels_tbl.to_pandas()
    s = s[s["ts"] < pd.Timestamp(run_date + dt.timedelta(days=1))]
    joined = s.merge(u, on="sessionid")
    months = joined["ts"].dt.strftime("%Y-%m")
    return joined.groupby(months)["userid"].nunique().to_dict()


def published(client: WarehouseClient, table: str = "analytics.mau_summary") -> dict[str, int]:
    return {m: int(v) for m, v in client.execute(f"SELECT month, mau FROM {table}")}
