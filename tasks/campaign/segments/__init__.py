"""Customer-segment CSV -> validated Parquet: the pure core of LoadSegments (imports no luigi).

The task reads `[segments]` in luigi.cfg and passes it here as `LoadOptions`; this module
reads no configuration itself.

A CSV with columns customer_id, segment, email, phone, device_token (header matched
case- and whitespace-insensitively, extra columns ignored) is cut into ranges of whole lines
(about `chunk_rows` lines each) that are read and validated on one thread per core; pyarrow
and numpy release the GIL, and at most two ranges per thread are in flight, so memory stays
bounded whatever the file size. The only thing that grows is the set of customer ids seen,
kept as 128-bit hashes in an open-addressing set sized from the file's estimated row count.
The duplicate check and the line numbering pass each range in file order, so the result is the
same as one thread reading the file top to bottom. Each range is validated with pyarrow compute,
numpy and compiled kernels (kernels.py: numba, no GIL; the fast e-mail, phone and device-token
patterns run as DFAs built from the same regular expressions, dfa.py); only values off the fast
paths (unusual e-mails and phone numbers) go through email-validator / phonenumbers, one call per
distinct value (lru_cache).

A blank or whitespace-only line, or a row of empty fields, is no customer: it is counted
in `blank_lines`, never rejected. A row is rejected as a whole when it is malformed (wrong
field count, a quote left open at the end of its line, undecodable bytes, a field over
`max_field_length`), its customer_id is missing or already seen (the first row wins), its
segment is not allowed, or it has no valid address for any channel. Otherwise it is valid;
an invalid address for one channel is nulled and recorded as an issue for that channel
only. Always: rows_read == valid + rejected + blank_lines, one per physical line.

Parsing uses pyarrow's CSV reader, range by range; if it gives up on a range (a row longer
than its block) or its records do not match the range's physical lines (a quoted field ran
across lines), that range is read again with Python's csv module, line by line.

The loader is split by job: read.py cuts the file into ranges and turns each into a chunk of
raw bytes (pyarrow's reader, or Python's csv module), validate.py checks each chunk (with dfa.py and
kernels.py), write.py streams the results into customers.parquet and rejects.csv and writes
summary.json last; model.py holds what they share.
"""

from __future__ import annotations

import datetime
import functools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.campaign.segments.model import (
    CHANNEL_COLUMNS,
    CUSTOMERS_FILE,
    CUSTOMERS_SCHEMA,
    REJECTS_FILE,
    REQUIRED_COLUMNS,
    SUMMARY_FILE,
    LoadOptions,
    LoadResult,
    RawChunk,
)
from tasks.campaign.segments.read import (
    count_lines,
    data_start,
    extra_columns,
    read_header,
    read_range,
    required_positions,
    split_ranges,
)
from tasks.errors import CheckFailure, DataValidationError

__all__ = [
    "CHANNEL_COLUMNS", "CUSTOMERS_FILE", "CUSTOMERS_SCHEMA", "REJECTS_FILE", "REQUIRED_COLUMNS", "SUMMARY_FILE",
    "LoadOptions", "LoadPlan", "LoadResult", "channel_scan", "customers_for_channel", "iter_customers_for_channel",
    "load_segments", "output_dir", "plan_load",
]


def output_dir(var_dir: str | os.PathLike[str], date: datetime.date) -> Path:
    """<var_dir>/segments/<YYYY-MM-DD>: where one day's customers, rejects and summary live."""
    return Path(var_dir) / "segments" / date.isoformat()


def channel_scan(parquet_path: str | os.PathLike[str], channel: str, segment: str,
                 also: tuple[str, ...] = ()) -> tuple[list[str], pc.Expression]:
    """The columns to read for `channel` and the filter "has that address, and is in `segment`" ('all': any).

    Columns: customer_id, segment, the channel's address column (email, phone or device_token), the
    required columns named in `also` (e.g. phone, to place a push recipient in a time zone) and every
    extra column of the CSV (template fields).
    """
    try:
        address = CHANNEL_COLUMNS[channel]
    except KeyError:
        raise ValueError(f"unknown channel {channel!r}; expected one of {sorted(CHANNEL_COLUMNS)}") from None
    wanted = pc.field(address).is_valid()
    if segment != "all":
        wanted = wanted & (pc.field("segment") == segment.strip().lower())
    extras = [n for n in pq.read_schema(parquet_path).names if n not in REQUIRED_COLUMNS]
    return list(dict.fromkeys(["customer_id", "segment", address, *also, *extras])), wanted


def customers_for_channel(parquet_path: str | os.PathLike[str], channel: str, segment: str,
                          also: tuple[str, ...] = ()) -> pa.Table:
    """The customers of `segment` ('all' for every segment) with an address for `channel`, sorted by
    customer_id, with the columns of channel_scan. `channel` is 'email', 'sms' or 'push'."""
    columns, wanted = channel_scan(parquet_path, channel, segment, also)
    table = pq.read_table(parquet_path, columns=columns, filters=wanted)
    return table.sort_by("customer_id")


def iter_customers_for_channel(parquet_path: str | os.PathLike[str], channel: str, segment: str,
                               batch_rows: int = 10_000, also: tuple[str, ...] = ()) -> Iterator[pa.RecordBatch]:
    """Like customers_for_channel, in record batches of about `batch_rows` rows in file order (never the whole
    file in memory)."""
    import pyarrow.dataset as ds  # here: it imports pandas, which the CLI's `status` never needs

    columns, wanted = channel_scan(parquet_path, channel, segment, also)
    dataset = ds.dataset(parquet_path, format="parquet")
    scanner = dataset.scanner(columns=columns, filter=wanted, batch_size=batch_rows, use_threads=False)
    for batch in scanner.to_batches():
        if batch.num_rows:
            yield batch


def load_segments(input_path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                  options: LoadOptions | None = None) -> LoadResult:
    """Validate `input_path` into customers.parquet, rejects.csv and summary.json under `out_dir`.

    Raises DataValidationError when the file is missing, empty or lacks required columns
    (nothing written), or when the rejected share exceeds `max_reject_ratio` (rejects.csv
    written so the operator can see why; no customers.parquet, no summary.json).
    """
    # the writer pulls in the validator and its compiled kernels (numba: ~0.5-1 s and ~120 MB to import):
    # only a load pays for them, never `import tasks` (every luigi process, cron, status)
    from tasks.campaign.segments.write import finish, stream

    options = options or LoadOptions()
    out = Path(out_dir)
    started = time.monotonic()
    plan = plan_load(input_path, options)
    counts = stream(plan.path, out, options, plan.ranges, plan.read, first_line=2, workers=plan.workers,
                    extras=plan.extras, expected_rows=plan.expected_rows)
    return finish(plan.path, out, options, counts, time.monotonic() - started, plan.extras, plan.ignored)


@dataclass(frozen=True)
class LoadPlan:
    """How a file will be read: its ranges of whole lines, the reader of one range, the extra columns."""

    path: Path
    ranges: list[tuple[int, int]]
    read: Callable[[int, int], RawChunk]  # (start, end) -> the range's records
    extras: tuple[str, ...]  # template fields, after the required columns in each chunk
    ignored: list[str]  # header names not carried
    expected_rows: int  # about how many rows the file has
    workers: int


def plan_load(input_path: str | os.PathLike[str], options: LoadOptions) -> LoadPlan:
    """Check the file and its header, and cut it into ranges (DataValidationError when the file is missing,
    empty or lacks required columns)."""
    path = Path(input_path)
    if not path.is_file():
        raise DataValidationError("segments CSV", [CheckFailure("input_exists", f"no such file: {path}")])
    header = read_header(path, options.encoding)
    positions = required_positions(header)
    extras, ignored = extra_columns(header)
    positions += [index for _, index in extras]
    start = data_start(path)
    range_bytes = _range_bytes(path, start, options.chunk_rows)
    ranges = split_ranges(path, start, range_bytes)
    return LoadPlan(
        path=path, ranges=ranges,
        read=functools.partial(read_range, path, width=len(header), positions=positions),
        extras=tuple(name for name, _ in extras), ignored=ignored,
        expected_rows=int((path.stat().st_size - start) / range_bytes * options.chunk_rows),
        workers=_workers(len(ranges)),
    )



def _range_bytes(path: Path, start: int, chunk_rows: int) -> int:
    """Bytes of about `chunk_rows` lines, from the mean line length of the first megabyte of data."""
    with open(path, "rb") as fh:
        fh.seek(start)
        sample = fh.read(1 << 20)
    mean = len(sample) / max(1, count_lines(sample))
    return max(1, int(chunk_rows * mean))


def _workers(ranges: int) -> int:
    """One thread per core this process may use, no more than there are ranges."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, ranges))
