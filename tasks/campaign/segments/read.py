"""Reading a segment CSV into RawChunks of raw bytes: pyarrow's streaming reader, or Python's csv
module when pyarrow gives up (a row longer than its block). Both yield the same chunks, so
decoding and validation are shared. Reads no luigi.cfg section."""

from __future__ import annotations

import collections
import contextlib
import csv
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from tasks.campaign.segments.model import (
    BLANK_LINE,
    MALFORMED_QUOTES,
    REQUIRED_COLUMNS,
    WRONG_FIELD_COUNT,
    Malformed,
    RawChunk,
)
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
    """Stream the file with pyarrow's CSV reader, all columns as raw bytes.

    pyarrow lets a quoted field run across lines (an unclosed quote swallows the rest of the
    file into one field). So the records it read are counted against the file's physical
    lines at the end; when they differ, ArrowReaderGaveUp hands the file to python_chunks,
    which reads it line by line.
    """
    names = [f"c{i}" for i in range(width)]
    skipped: collections.deque[Malformed] = collections.deque()

    def on_invalid(row: pacsv.InvalidRow) -> str:
        try:
            text = row.text
        except UnicodeDecodeError:
            text = "<undecodable>"
        if row.actual_columns == 1 and not text.strip():
            skipped.append(Malformed(row.number, BLANK_LINE, "", ""))
        else:
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
            lines, taken, next_line = _number_rows(pending_rows, next_line, skipped)
            yield _chunk(columns, lines, taken)
            pending, pending_rows = [], 0
        if batch is None:
            break
    if skipped:
        next_line += len(skipped)
        yield _chunk([pa.array([], pa.binary())] * len(positions), np.empty(0, np.int64), list(skipped))
    if next_line - 1 != count_lines(path):
        raise ArrowReaderGaveUp("a quoted field runs across lines")


def _chunk(columns: list[pa.Array], lines: np.ndarray, taken: list[Malformed]) -> RawChunk:
    malformed = [m for m in taken if m.reason != BLANK_LINE]
    return RawChunk(columns, lines, malformed, blank_lines=len(taken) - len(malformed))


def count_lines(path: Path, block: int = 16 << 20) -> int:
    """Physical lines of the file (ended by LF, CRLF or a lone CR, as the CSV readers split them)."""
    lines = 0
    previous_cr = False  # the block before ended with CR: a LF starting this one completes a CRLF
    last = b""
    with open(path, "rb", buffering=0) as fh:
        while data := fh.read(block):
            lines += data.count(b"\n")
            if b"\r" in data:  # rare: only CR-using files pay for the two extra passes
                lines += data.count(b"\r") - data.count(b"\r\n")
            if previous_cr and data[:1] == b"\n":
                lines -= 1
            previous_cr = data[-1:] == b"\r"
            last = data[-1:]
    if last and last not in (b"\n", b"\r"):
        lines += 1  # the last line has no line break
    return lines


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
    """Stream the file line by line with the csv module (no row-size limit); latin-1 keeps every byte.

    Each physical line is one record: a quote still open at the end of its line rejects that
    line (MALFORMED_QUOTES, naming it) and reading goes on with the next line, so an unclosed
    quote costs one row and every line of the file is accounted for.
    """
    with _no_csv_field_limit(), open(path, encoding="latin-1", newline="") as fh:
        next(fh, None)  # the header (read_header parsed it)
        rows: list[list[str]] = []
        lines: list[int] = []
        malformed: list[Malformed] = []
        blank = 0
        for line, raw in enumerate(fh, start=2):
            text = raw.rstrip("\r\n")
            if not text.strip():
                blank += 1
                continue
            try:
                fields = next(csv.reader((text,), strict=True))
            except csv.Error as exc:
                malformed.append(Malformed(line, MALFORMED_QUOTES, f"{exc} (a quoted field must close on its line)",
                                           _as_text(text)))
                continue
            if len(fields) != width:
                malformed.append(Malformed(line, WRONG_FIELD_COUNT,
                                           f"{width} fields expected, {len(fields)} found", _as_text(text)))
            else:
                rows.append([fields[p] for p in positions])
                lines.append(line)
            if len(rows) >= chunk_rows:
                yield _python_chunk(rows, lines, malformed, len(positions), blank)
                rows, lines, malformed, blank = [], [], [], 0
        if rows or malformed or blank:
            yield _python_chunk(rows, lines, malformed, len(positions), blank)


def _as_text(latin1: str) -> str:
    return latin1.encode("latin-1").decode("utf-8", "backslashreplace")


def _python_chunk(rows: list[list[str]], lines: list[int], malformed: list[Malformed], width: int,
                  blank: int) -> RawChunk:
    columns = [pa.array([r[i].encode("latin-1") for r in rows], pa.binary()) for i in range(width)]
    return RawChunk(columns, np.asarray(lines, dtype=np.int64), malformed, blank_lines=blank)


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


