"""Deterministic demo data for the raw tables (`python -m tasks seed-demo`).

raw_data.session_timestamp(sessionid, ts) and raw_data.user_session_channel(userid,
sessionid, channel): sessions spread over 2025-01-01 .. 2026-06-30 (18 months; `months` moves
the start, e.g. 24 for the incremental benchmark), about one user per 40 sessions (at least
2,000). Generated column-wise with NumPy/pyarrow, written
to Parquet under <var_dir>/seed/ and bulk-loaded (10,000,000 sessions in seconds).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.warehouse.client import WarehouseClient

log = logging.getLogger(__name__)

SESSIONS_TABLE = "raw_data.session_timestamp"
CHANNELS_TABLE = "raw_data.user_session_channel"
START = dt.datetime(2025, 1, 1)
END = dt.datetime(2026, 7, 1)
CHANNELS = ["Google", "Facebook", "Instagram", "Youtube", "Naver", "Organic"]
DEFAULT_SESSIONS = 200_000


def demo_tables(sessions: int, seed: int = 42, months: int = 18) -> tuple[pa.Table, pa.Table]:
    """The two raw tables for `sessions` sessions over the `months` months before END, identical for the same
    arguments."""
    rng = np.random.default_rng(seed)
    users = max(2_000, sessions // 40)
    first = END.year * 12 + END.month - 1 - months
    start = dt.datetime(first // 12, first % 12 + 1, 1)
    span_us = int((END - start).total_seconds() * 1_000_000)
    start_us = int(start.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
    offsets = rng.integers(0, span_us, size=sessions, dtype=np.int64)
    ts = pa.array(start_us + (offsets // 1_000_000) * 1_000_000, type=pa.timestamp("us"))
    ids = pc.binary_join_element_wise("s", pa.array(np.arange(sessions, dtype=np.int64)).cast(pa.string()), "")
    # a skewed user activity: some users are far more active than others
    userid = (rng.zipf(1.3, size=sessions) + rng.integers(0, users, size=sessions)) % users + 1
    channel = pa.DictionaryArray.from_arrays(
        pa.array(rng.integers(0, len(CHANNELS), size=sessions).astype(np.int32)), pa.array(CHANNELS)
    ).cast(pa.string())
    sessions_tbl = pa.table({"sessionid": ids, "ts": ts})
    channels_tbl = pa.table({"userid": pa.array(userid.astype(np.int64)), "sessionid": ids, "channel": channel})
    return sessions_tbl, channels_tbl


def raw_tables_present(client: WarehouseClient) -> bool:
    """True when both raw tables exist and hold rows."""
    for name in (SESSIONS_TABLE, CHANNELS_TABLE):
        schema, table = name.split(".")
        (exists,), = client.run("table_exists", {"schema": schema, "table": table})
        if not exists:
            return False
        (count,), = client.run("row_count", table=name)
        if not count:
            return False
    return True


def create_raw_tables(client: WarehouseClient) -> None:
    """(Re)create the two raw tables, empty."""
    client.run("create_schema", schema="raw_data")
    client.execute(f"CREATE OR REPLACE TABLE {SESSIONS_TABLE} (sessionid VARCHAR, ts TIMESTAMP_NTZ)", name="create")
    client.execute(
        f"CREATE OR REPLACE TABLE {CHANNELS_TABLE} (userid INTEGER, sessionid VARCHAR, channel VARCHAR)",
        name="create",
    )


def load(client: WarehouseClient, sessions_tbl: pa.Table, channels_tbl: pa.Table, work_dir: Path) -> None:
    """Replace the raw tables' contents with the given Arrow tables."""
    work_dir.mkdir(parents=True, exist_ok=True)
    create_raw_tables(client)
    for name, tbl in ((SESSIONS_TABLE, sessions_tbl), (CHANNELS_TABLE, channels_tbl)):
        path = work_dir / f"{name.replace('.', '__')}.parquet"
        pq.write_table(tbl, path, compression="zstd")
        client.dialect.load_parquet(client, name, path)
        path.unlink()
    log.info("loaded %s sessions into %s and %s", sessions_tbl.num_rows, SESSIONS_TABLE, CHANNELS_TABLE)
