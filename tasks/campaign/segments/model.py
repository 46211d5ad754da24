"""What the segment loader's reader, validator and writer share: file names, columns, reasons,
options and the raw chunk passed from reading to validation (pure; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

CUSTOMERS_FILE = "customers.parquet"
REJECTS_FILE = "rejects.csv"
SUMMARY_FILE = "summary.json"

REQUIRED_COLUMNS = ("customer_id", "segment", "email", "phone", "device_token")
# channel -> the address column of customers.parquet it sends to
CHANNEL_COLUMNS = {"email": "email", "sms": "phone", "push": "device_token"}
CUSTOMERS_SCHEMA = pa.schema([(name, pa.string()) for name in REQUIRED_COLUMNS])
REJECTS_HEADER = ("line_number", "scope", "reason", "detail", *REQUIRED_COLUMNS, "raw_line")
# Template fields a send sets itself: an extra column of one of these names is ignored (and reported).
RESERVED_FIELDS = ("campaign", "date", "unsubscribe_url")
# The optional extra column naming a customer's IANA time zone (quiet hours).
TIMEZONE_COLUMN = "timezone"


def customers_schema(extras: tuple[str, ...] = ()) -> pa.Schema:
    """customers.parquet's columns: the required ones, then the extra columns of the CSV (strings, null
    when empty), each a template field."""
    return pa.schema([(name, pa.string()) for name in (*REQUIRED_COLUMNS, *extras)])


def rejects_header(extras: tuple[str, ...] = ()) -> tuple[str, ...]:
    """rejects.csv's columns: where, why, the raw fields (extras too), and the raw line of malformed rows."""
    return ("line_number", "scope", "reason", "detail", *REQUIRED_COLUMNS, *extras, "raw_line")

# Row reasons, in precedence order: a row gets the first that applies.
UNDECODABLE = "undecodable"
WRONG_FIELD_COUNT = "wrong_field_count"
FIELD_TOO_LONG = "field_too_long"
MISSING_ID = "missing_customer_id"
DUPLICATE_ID = "duplicate_customer_id"
INVALID_SEGMENT = "invalid_segment"
NO_VALID_ADDRESS = "no_valid_address"
MALFORMED_QUOTES = "malformed_quotes"  # a quote left open at the end of its line (fields may not span lines)
# Not a reject: blank and whitespace-only lines are skipped and counted (`blank_lines` in summary.json).
BLANK_LINE = "blank_line"


@dataclass(frozen=True)
class LoadOptions:
    """How strictly a segment file is validated (the [segments] section, minus the input path)."""

    segments: tuple[str, ...] = ("premium", "regular", "new")
    default_region: str = "US"
    encoding: str = "cp1252"  # fallback for rows that are not UTF-8; "" rejects them
    max_reject_ratio: float = 0.05
    max_field_length: int = 1024
    device_token_min_length: int = 32
    device_token_max_length: int = 512
    chunk_rows: int = 50_000


@dataclass
class LoadResult:
    """What a load produced: the summary written to summary.json and the output paths."""

    summary: dict
    customers_path: Path
    rejects_path: Path
    summary_path: Path



@dataclass
class Malformed:
    """A record the reader could not split into the header's fields."""

    line_number: int
    reason: str
    detail: str
    raw_line: str


@dataclass
class RawChunk:
    """The records of a run of whole lines as raw bytes, one binary column per REQUIRED_COLUMNS entry.

    Line numbers (of the records and of the malformed lines) count from 1 at the chunk's first
    line; the validator adds where the chunk starts in the file. `lines` counts its physical lines.
    """

    columns: list[pa.Array]
    line_numbers: np.ndarray
    malformed: list[Malformed] = field(default_factory=list)
    blank_lines: int = 0
    lines: int = 0
