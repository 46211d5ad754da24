"""Writing a segment load: customers.parquet and rejects.csv streamed chunk by chunk (atomically),
the reject-ratio gate, and summary.json last (the completion target). Reads no luigi.cfg section."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import csv
import gc
import io
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.campaign.segments.model import (
    CHANNEL_COLUMNS,
    CUSTOMERS_FILE,
    REJECTS_FILE,
    SUMMARY_FILE,
    LoadOptions,
    LoadResult,
    RawChunk,
    customers_schema,
    rejects_header,
)
from tasks.campaign.segments.validate import Checked, Validator
from tasks.errors import CheckFailure, DataValidationError
from tasks.files import atomic_open, atomic_path, write_json_atomic


@dataclass
class Counts:
    rows_read: int = 0  # data lines of the file: valid + rejected + blank_lines
    blank_lines: int = 0
    valid: int = 0
    rejected_by_reason: collections.Counter = field(default_factory=collections.Counter)
    issues_by_reason: dict[str, collections.Counter] = field(
        default_factory=lambda: {scope: collections.Counter() for scope in CHANNEL_COLUMNS}
    )
    valid_per_channel: collections.Counter = field(default_factory=collections.Counter)
    decoded_with_fallback: int = 0

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())


# OWASP CSV injection: a cell starting with one of these is a formula in Excel and its kin.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize(row: tuple) -> tuple:
    """A rejects.csv row whose text cells cannot run as spreadsheet formulas: a leading `'` is added
    to any cell starting with =, +, -, @, tab or CR (the raw bytes stay in the source file, by line)."""
    return tuple(["'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v for v in row])


def parquet_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """customers.parquet's writer: snappy but for device tokens (random: snappy would spend time on them for
    ~3% of the file), a dictionary for the segment only, statistics for customer_id and segment."""
    compression = {name: "none" if name == "device_token" else "snappy" for name in schema.names}
    return pq.ParquetWriter(path, schema, compression=compression, use_dictionary=["segment"],
                            write_statistics=["customer_id", "segment"])


class _Flusher:
    """Writes a growing file's data to disk in the background while it is written (fdatasync on its own
    thread after each chunk), so the fsync that publishes it only waits for the last chunk's pages."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._wanted = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="segments-flush", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stopped:
                return
            with contextlib.suppress(OSError):  # best effort: the publishing fsync still checks
                os.fdatasync(self._fd)

    def close(self) -> None:
        self._stopped = True
        self._wanted.set()
        self._thread.join()
        os.close(self._fd)


@contextlib.contextmanager
def _flushing(path: Path) -> Iterator[_Flusher]:
    flusher = _Flusher(path)
    try:
        yield flusher
    finally:
        flusher.close()


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the chunks stream (re-enabled after, if it was on).

    A load allocates tens of thousands of small containers (reject rows), which triggers full
    collections, and each full collection walks every object of the process (numba, pyarrow,
    pandas, luigi): about 6% of a load's CPU time, measured with perf. The load makes no reference
    cycles worth collecting; reference counting frees its objects as before.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def stream(path: Path, out: Path, options: LoadOptions, ranges: list[tuple[int, int]],
           read: Callable[[int, int], RawChunk], first_line: int, workers: int, extras: tuple[str, ...] = (),
           expected_rows: int = 0) -> Counts:
    """Read and validate `ranges` of the file on `workers` threads (pyarrow and numpy release the GIL),
    and write the results in file order into customers.parquet and rejects.csv; the ratio gate
    sits between. At most 2 x workers ranges are in flight, so memory stays bounded. `extras` are
    the names of the extra columns the reader passes after the required ones; `expected_rows` about
    how many rows the file has (the set of ids seen is sized for them)."""
    validator = Validator(options, first_line, extras, expected_rows)
    schema = customers_schema(extras)
    counts = Counts()
    customers_path, rejects_path = out / CUSTOMERS_FILE, out / REJECTS_FILE
    with atomic_path(customers_path) as parquet_tmp:
        with (
            _cyclic_gc_paused(),
            atomic_open(rejects_path, "w", encoding="utf-8", newline="") as rejects_fh,
            parquet_writer(parquet_tmp, schema) as writer,
            concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="segments") as pool,
            _flushing(parquet_tmp) as flusher,
        ):
            csv.writer(rejects_fh).writerow(rejects_header(extras))

            def add(result: _Validated) -> None:
                chunk, checked, rejects_text = result
                _add(counts, chunk, checked, rejects_text, writer, rejects_fh)
                flusher.kick()

            _validate_in_order(pool, ranges, read, validator, workers, add)
            if counts.rows_read == counts.blank_lines:
                raise DataValidationError("segments CSV", [CheckFailure("not_empty", "the file has no data rows")])
        # rejects.csv is published here, before the gate, so a failed load still shows why
        _reject_ratio_gate(counts, options, out, rejects_path)
    return counts


_Validated = tuple[RawChunk, Checked, str]  # a chunk, its validation, its rejects.csv lines


def _check_range(read: Callable[[int, int], RawChunk], validator: Validator, index: int, start: int,
                 end: int) -> _Validated:
    """Read and validate range number `index` (on a pool thread), and format its rejects.csv lines there."""
    try:
        chunk = read(start, end)
        checked = validator.check(chunk, index)
        text = io.StringIO()
        csv.writer(text).writerows(neutralize(row) for row in checked.reject_rows)
        return chunk, checked, text.getvalue()
    except BaseException:
        validator.order.abandon(index)  # the chunks after this one must not wait for it
        raise


def _validate_in_order(pool: concurrent.futures.Executor, ranges: list[tuple[int, int]],
                       read: Callable[[int, int], RawChunk], validator: Validator, workers: int,
                       add: Callable[[_Validated], None]) -> None:
    """Validate every range on `pool`, at most 2 x workers in flight, handing each result to `add` in file order.
    On any failure no chunk waits any more and the ranges not started are cancelled."""
    pending: collections.deque[concurrent.futures.Future[_Validated]] = collections.deque()
    try:
        for index, (start, end) in enumerate(ranges):
            pending.append(pool.submit(_check_range, read, validator, index, start, end))
            while len(pending) > 2 * workers or (pending and pending[0].done()):
                add(pending.popleft().result())
        while pending:
            add(pending.popleft().result())
    except BaseException:
        validator.order.abandon()
        for future in pending:
            future.cancel()
        raise


def _reject_ratio_gate(counts: Counts, options: LoadOptions, out: Path, rejects_path: Path) -> None:
    """Fail the load (DataValidationError) when more than max_reject_ratio of its data rows were rejected, and
    remove the customers and summary files of an earlier load so that nothing downstream reads them."""
    ratio = counts.rejected / (counts.rows_read - counts.blank_lines)  # blank lines never count
    if ratio > options.max_reject_ratio:
        (out / CUSTOMERS_FILE).unlink(missing_ok=True)
        (out / SUMMARY_FILE).unlink(missing_ok=True)
        raise DataValidationError("segments CSV", [CheckFailure(
            "max_reject_ratio",
            f"{counts.rejected} of {counts.rows_read - counts.blank_lines} rows rejected "
            f"({ratio:.1%} > {options.max_reject_ratio:.1%}); "
            f"by reason: {dict(sorted(counts.rejected_by_reason.items()))}; see {rejects_path}",
        )])


def _add(counts: Counts, chunk: RawChunk, checked: Checked, rejects_text: str, writer: pq.ParquetWriter,
         rejects: IO[str]) -> None:
    """Write one validated chunk (in file order) and add up its counts."""
    writer.write_table(checked.customers)
    rejects.write(rejects_text)
    counts.rows_read += checked.rows + chunk.blank_lines
    counts.blank_lines += chunk.blank_lines + checked.blank_rows
    counts.valid += checked.customers.num_rows
    counts.rejected_by_reason.update(checked.rejected_by_reason)
    for scope, counter in checked.issues_by_reason.items():
        counts.issues_by_reason[scope].update(counter)
    counts.valid_per_channel.update(checked.valid_per_channel)
    counts.decoded_with_fallback += checked.decoded_with_fallback
    assert counts.rows_read == counts.valid + counts.rejected + counts.blank_lines, "a row is unaccounted"


def finish(path: Path, out: Path, options: LoadOptions, counts: Counts, duration: float,
           extras: tuple[str, ...] = (), ignored: list[str] | None = None) -> LoadResult:
    """Write summary.json (the completion target) last."""
    summary = {
        "extra_columns": list(extras),
        "ignored_columns": list(ignored or ()),
        "rows_read": counts.rows_read,
        "valid": counts.valid,
        "rejected": counts.rejected,
        "blank_lines": counts.blank_lines,
        "rejected_by_reason": dict(sorted(counts.rejected_by_reason.items())),
        "channel_issues_by_reason": {
            scope: {k: v for k, v in sorted(c.items()) if v} for scope, c in counts.issues_by_reason.items()
        },
        "valid_per_channel": {ch: counts.valid_per_channel.get(ch, 0) for ch in CHANNEL_COLUMNS},
        "decoded_with_fallback_encoding": counts.decoded_with_fallback,
        "input_path": str(path),
        "duration_s": round(duration, 3),
    }
    assert counts.rows_read == counts.valid + counts.rejected + counts.blank_lines, "a row is unaccounted"
    summary_path = out / SUMMARY_FILE
    write_json_atomic(summary_path, summary)
    return LoadResult(summary, out / CUSTOMERS_FILE, out / REJECTS_FILE, summary_path)
