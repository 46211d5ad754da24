"""Customer-segment CSV -> validated Parquet: the pure core of LoadSegments (imports no luigi).

Being written (issue 4); `customers_for_channel` is the stable read API for the send tasks.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

CUSTOMERS_FILE = "customers.parquet"
REJECTS_FILE = "rejects.csv"
SUMMARY_FILE = "summary.json"

# channel -> the address column of customers.parquet it sends to
CHANNEL_COLUMNS = {"email": "email", "sms": "phone", "push": "device_token"}


def output_dir(var_dir: str | os.PathLike[str], date: datetime.date) -> Path:
    """<var_dir>/segments/<YYYY-MM-DD>: where one day's customers, rejects and summary live."""
    return Path(var_dir) / "segments" / date.isoformat()


def customers_for_channel(parquet_path: str | os.PathLike[str], channel: str, segment: str) -> pa.Table:
    """The customers of `segment` ('all' for every segment) with an address for `channel`.

    Columns: customer_id, segment and the channel's address column (email, phone or
    device_token), sorted by customer_id. `channel` is 'email', 'sms' or 'push'.
    """
    try:
        address = CHANNEL_COLUMNS[channel]
    except KeyError:
        raise ValueError(f"unknown channel {channel!r}; expected one of {sorted(CHANNEL_COLUMNS)}") from None
    wanted = pc.field(address).is_valid()
    if segment != "all":
        wanted = wanted & (pc.field("segment") == segment.strip().lower())
    table = pq.read_table(parquet_path, columns=["customer_id", "segment", address], filters=wanted)
    return table.sort_by("customer_id")
