"""Reading a segment CSV into RawChunks of raw bytes: pyarrow's streaming reader, or Python's csv
module when pyarrow gives up (a row longer than its block). Both yield the same chunks, so
decoding and validation are shared. Reads no luigi.cfg section."""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from tasks.campaign.segments.model import REQUIRED_COLUMNS, WRONG_FIELD_COUNT, Malformed, RawChunk
from tasks.errors import CheckFailure, DataValidationError

_ARROW_BLOCK_SIZE = 4 << 20  # rows longer than this make the arrow reader give up (csv fallback)


class ArrowReaderGaveUp(Exception):
    """pyarrow's reader could not parse the file (e.g. a row longer than its block): use the csv module."""


@contextlib.contextmanager
def _no_csv_field_limit() -> Iterator[None]:
    """Lift the csv module's field size limit (131072 by default) for the duration of a read."""
    previous = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def read_header(path: Path, encoding: str) -> list[str]:
    """The header fields, BOM stripped and decoded (UTF-8, else the fallback encoding)."""
    with _no_csv_field_limit(), open(path, encoding="latin-1", newline="") as fh:
        try:
            fields = next(csv.reader(fh))
        except StopIteration:
            raise DataValidationError("segments CSV", [CheckFailure("not_empty", "the file is empty")]) from None
    names = []
    for i, name in enumerate(fields):
        raw = name.encode("latin-1")
        if i == 0 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        decoded = decode(raw, encoding)
        names.append(decoded if decoded is not None else raw.decode("utf-8", "backslashreplace"))
    return names


def required_positions(header: Sequence[str]) -> list[int]:
    """Index of each required column in the header; a clear error naming missing or repeated ones."""
    normalised = [name.strip().lower() for name in header]
    failures = []
    missing = [name for name in REQUIRED_COLUMNS if name not in normalised]
    if missing:
        failures.append(CheckFailure("required_columns", f"missing column(s): {', '.join(missing)}"))
    repeated = [name for name in REQUIRED_COLUMNS if normalised.count(name) > 1]
    if repeated:
        failures.append(CheckFailure("unique_columns", f"column(s) given more than once: {', '.join(repeated)}"))
    if failures:
        raise DataValidationError("segments CSV header", failures)
    return [normalised.index(name) for name in REQUIRED_COLUMNS]


def arrow_chunks(path: Path, width: int, positions: list[int], chunk_rows: int) -> Iterator[RawChunk]:
    """Stream the file with pyarrow's CSV reader, all columns as raw bytes."""
    names = [f"c{i}" for i in range(width)]
    skipped: collections.deque[Malformed] = collections.deque()

    def on_invalid(row: pacsv.InvalidRow) -> str:
        try:
            text = row.text
        except UnicodeDecodeError:
            text = "<undecodable>"
        skipped.append(Malformed(row.number, WRONG_FIELD_COUNT,
                                  f"{row.expected_columns} fields expected, {row.actual_columns} found", text))
        return "skip"

    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(
                block_size=_ARROW_BLOCK_SIZE, use_threads=False, column_names=names, skip_rows=1
            ),
            parse_options=pacsv.ParseOptions(
                invalid_row_handler=on_invalid, ignore_empty_lines=False, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.binary() for n in names},
                include_columns=[names[p] for p in positions],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):  # header only and no newline after it
            return
        raise ArrowReaderGaveUp(str(exc)) from exc
    next_line = 2
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    batches = iter(reader)
    while True:
        try:
            batch = next(batches, None)
        except pa.ArrowInvalid as exc:
            raise ArrowReaderGaveUp(str(exc)) from exc
        if batch is not None and batch.num_rows:
            pending.append(batch)
            pending_rows += batch.num_rows
        if pending and (pending_rows >= chunk_rows or batch is None):
            columns = [pa.concat_arrays([b.column(i) for b in pending]) for i in range(len(positions))]
            lines, malformed, next_line = _number_rows(pending_rows, next_line, skipped)
            yield RawChunk(columns, lines, malformed)
            pending, pending_rows = [], 0
        if batch is None:
            break
    if skipped:
        yield RawChunk([pa.array([], pa.binary())] * len(positions), np.empty(0, np.int64), list(skipped))


def _number_rows(count: int, first: int, skipped: collections.deque[Malformed]
                 ) -> tuple[np.ndarray, list[Malformed], int]:
    """Line numbers of `count` parsed rows starting at `first`, stepping over the skipped ones."""
    taken: list[Malformed] = []
    end = first + count
    while skipped and skipped[0].line_number < end + len(taken):
        taken.append(skipped.popleft())
    end += len(taken)
    lines = np.arange(first, end, dtype=np.int64)
    if taken:
        lines = lines[~np.isin(lines, [m.line_number for m in taken])]
    return lines, taken, end


def python_chunks(path: Path, width: int, positions: list[int], chunk_rows: int) -> Iterator[RawChunk]:
    """Stream the file with the csv module (no row-size limit); latin-1 keeps every byte as is."""
    with _no_csv_field_limit(), open(path, encoding="latin-1", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        rows: list[list[str]] = []
        lines: list[int] = []
        malformed: list[Malformed] = []
        line = 1
        for fields in reader:
            line += 1
            if not fields:  # a blank line: the arrow reader sees it as a row of empty fields
                fields = [""] * width
            if len(fields) != width:
                raw = _joined(fields).encode("latin-1").decode("utf-8", "backslashreplace")
                malformed.append(Malformed(line, WRONG_FIELD_COUNT,
                                            f"{width} fields expected, {len(fields)} found", raw))
            else:
                rows.append([fields[p] for p in positions])
                lines.append(line)
            if len(rows) >= chunk_rows:
                yield _python_chunk(rows, lines, malformed, len(positions))
                rows, lines, malformed = [], [], []
        if rows or malformed:
            yield _python_chunk(rows, lines, malformed, len(positions))


def _python_chunk(rows: list[list[str]], lines: list[int], malformed: list[Malformed], width: int) -> RawChunk:
    columns = [pa.array([r[i].encode("latin-1") for r in rows], pa.binary()) for i in range(width)]
    return RawChunk(columns, np.asarray(lines, dtype=np.int64), malformed)


def _joined(fields: Sequence[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue()


def decode(raw: bytes, encoding: str) -> str | None:
    """UTF-8, else the fallback encoding, else None (the row is rejected as undecodable)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if encoding:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            pass
    return None


