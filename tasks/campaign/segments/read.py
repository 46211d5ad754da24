"""Reading a segment CSV: the header, the data cut into ranges of whole lines, and each range
parsed into a RawChunk of raw bytes by pyarrow's reader, or by Python's csv module when pyarrow
gives up (a row longer than its block, a quoted field across lines). Both give the same
chunks, so decoding and validation are shared. Reads no luigi.cfg section."""

from __future__ import annotations

import contextlib
import csv
import io
import mmap
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from tasks.campaign.segments.model import (
    BLANK_LINE,
    MALFORMED_QUOTES,
    REQUIRED_COLUMNS,
    RESERVED_FIELDS,
    WRONG_FIELD_COUNT,
    Malformed,
    RawChunk,
)
from tasks.errors import CheckFailure, DataValidationError

# a range is parsed as one block, so its columns need no concatenation; a row longer than this makes the
# arrow reader give up (csv fallback)
_ARROW_BLOCK_SIZE = 64 << 20


class ArrowReaderGaveUpError(Exception):
    """pyarrow's reader could not parse a range (e.g. a row longer than its block): use the csv module."""


_CSV_LIMIT_LOCK = threading.Lock()
_HOOK_LOCK = threading.Lock()


def _quiet_undecodable_invalid_rows() -> None:
    """Keep pyarrow's failure to decode an invalid row off stderr (installed once, process-wide).

    pyarrow decodes an invalid row's text as UTF-8 before it calls the handler; on a row that is
    not UTF-8 the decoding fails inside pyarrow, which prints "Exception ignored in: on_invalid"
    and gives the range up, and read_range reads it again line by line, which rejects that row
    with its reason. Only that one case is dropped; every other unraisable exception goes on to
    the hook that was there before.
    """
    with _HOOK_LOCK:
        if not isinstance(sys.unraisablehook, _UndecodableRowFilter):
            sys.unraisablehook = _UndecodableRowFilter(sys.unraisablehook)


class _UndecodableRowFilter:
    """The unraisable hook of _quiet_undecodable_invalid_rows: drops that one case, passes on every other."""

    def __init__(self, previous: Callable[[sys.UnraisableHookArgs], object]) -> None:
        self.previous = previous

    def __call__(self, unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, UnicodeDecodeError) and getattr(
            unraisable.object, "__qualname__", ""
        ) == _arrow_chunk.__qualname__ + ".<locals>.on_invalid":
            return
        self.previous(unraisable)


@contextlib.contextmanager
def _no_csv_field_limit() -> Iterator[None]:
    """Lift the csv module's field size limit (131072 by default) for the duration of a read.

    The limit is process-wide, so readers on other threads take turns: one thread restoring the
    limit while another still parses would make that one fail on a long field. (The csv module
    holds the GIL anyway, so taking turns costs nothing.)
    """
    with _CSV_LIMIT_LOCK:
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


def extra_columns(header: Sequence[str]) -> tuple[list[tuple[str, int]], list[str]]:
    """([(field name, index)], [ignored header names]) of the columns beyond the required ones.

    A name becomes a template field: lower-cased, runs of anything but letters, digits and `_`
    turned into `_` (`First Name` -> `first_name`), a leading digit prefixed with `_`. Ignored:
    empty names, names that repeat another column's, and the fields a send sets itself
    (campaign, date, unsubscribe_url).
    """
    taken = set(REQUIRED_COLUMNS)
    extras: list[tuple[str, int]] = []
    ignored: list[str] = []
    for index, raw in enumerate(header):
        if raw.strip().lower() in REQUIRED_COLUMNS:
            continue
        name = re.sub(r"[^a-z0-9_]+", "_", raw.strip().lower()).strip("_")
        if name[:1].isdigit():
            name = "_" + name
        if not name or name in taken or name in RESERVED_FIELDS:
            ignored.append(raw.strip())
            continue
        taken.add(name)
        extras.append((name, index))
    return extras, ignored


def data_start(path: Path) -> int:
    """Byte offset where the data begins: after the header's line break (LF, CRLF or a lone CR)."""
    offset = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 16):
            ends = [i for i in (block.find(b"\n"), block.find(b"\r")) if i >= 0]
            if ends:
                end = offset + min(ends) + 1
                if block[min(ends):min(ends) + 1] == b"\r":
                    fh.seek(end)
                    end += fh.read(1) == b"\n"
                return end
            offset += len(block)
    return offset


def split_ranges(path: Path, start: int, target_bytes: int) -> list[tuple[int, int]]:
    """[start, end) byte ranges of about `target_bytes` covering the data, each ending just after a LF.

    A record never spans physical lines (see python_chunk), so a range of whole lines parses on its
    own: ranges are read and validated in parallel and numbered in file order afterwards.
    """
    size = path.stat().st_size
    bounds = [start]
    with open(path, "rb") as fh:
        position = start
        while position + target_bytes < size:
            fh.seek(position + target_bytes)
            skipped = position + target_bytes
            while block := fh.read(1 << 16):
                newline = block.find(b"\n")
                if newline >= 0:
                    position = skipped + newline + 1
                    break
                skipped += len(block)
            else:
                break  # no LF after this point: the rest is one range
            if position >= size:
                break
            bounds.append(position)
    return [(a, b) for a, b in zip(bounds, [*bounds[1:], size], strict=True) if b > a]


def count_lines(data: bytes) -> int:
    """Physical lines in `data` (ended by LF, CRLF or a lone CR, as the CSV readers split them)."""
    lines = data.count(b"\n")
    if b"\r" in data:  # rare: only CR-using files pay for the two extra passes
        lines += data.count(b"\r") - data.count(b"\r\n")
    if data and data[-1:] not in (b"\n", b"\r"):
        lines += 1  # the last line has no line break
    return lines


def read_range(path: Path, start: int, end: int, width: int, positions: list[int]) -> RawChunk:
    """Parse the whole lines in [start, end) into a RawChunk, line numbers counted from 1 in the range.

    pyarrow's reader first; it lets a quoted field run across lines (an unclosed quote would
    swallow the rest of the range), so its records are counted against the range's physical
    lines, and when they differ (or pyarrow gives up, e.g. on a row longer than its block) the
    range is read again by python_chunk, line by line.
    """
    if end <= start:
        return python_chunk(b"", width, positions)
    # the range memory-mapped, not read: pyarrow parses the page cache's bytes where they are (no copy)
    base = start - start % mmap.ALLOCATIONGRANULARITY
    with open(path, "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), end - base, offset=base, access=mmap.ACCESS_READ)
    with contextlib.closing(mapped), memoryview(mapped) as view, view[start - base:] as data:
        try:
            return _arrow_chunk(data, mapped.find(b'"', start - base) >= 0, width, positions)
        except ArrowReaderGaveUpError:
            return python_chunk(bytes(data), width, positions)


def _arrow_chunk(data: memoryview, quoted: bool, width: int, positions: list[int]) -> RawChunk:
    """pyarrow's reader on `data` (`quoted`: it holds a `"`). The columns it returns are copies: none
    refers to `data`."""
    names = [f"c{i}" for i in range(width)]
    skipped: list[Malformed] = []

    _quiet_undecodable_invalid_rows()

    def on_invalid(row: pacsv.InvalidRow) -> str:
        # (a row that is not UTF-8 never gets here: see _quiet_undecodable_invalid_rows)
        text = row.text
        if row.actual_columns == 1 and not text.strip():
            skipped.append(Malformed(row.number, BLANK_LINE, "", ""))
        else:
            skipped.append(Malformed(row.number, WRONG_FIELD_COUNT,
                                     f"{row.expected_columns} fields expected, {row.actual_columns} found", text))
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(block_size=_ARROW_BLOCK_SIZE, use_threads=False, column_names=names),
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
        raise ArrowReaderGaveUpError(str(exc)) from exc
    lines = table.num_rows + len(skipped)
    # without a quote no record can span lines (one record per line); with one, count the lines
    if quoted and count_lines(bytes(data)) != lines:
        raise ArrowReaderGaveUpError("a quoted field runs across lines")
    line_numbers = np.arange(1, lines + 1, dtype=np.int64)
    if skipped:
        line_numbers = line_numbers[~np.isin(line_numbers, [m.line_number for m in skipped])]
    columns = [_one_array(table.column(i)) for i in range(len(positions))]
    malformed = [m for m in skipped if m.reason != BLANK_LINE]
    return RawChunk(columns, line_numbers, malformed, blank_lines=len(skipped) - len(malformed), lines=lines)


def _one_array(column: pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def python_chunk(data: bytes, width: int, positions: list[int]) -> RawChunk:
    """Parse `data` line by line with the csv module (no row-size limit); latin-1 keeps every byte.

    Each physical line is one record: a quote still open at the end of its line rejects that
    line (MALFORMED_QUOTES, naming it) and reading goes on with the next line, so an unclosed
    quote costs one row and every line is accounted for.
    """
    rows: list[list[str]] = []
    numbers: list[int] = []
    line = 0
    malformed: list[Malformed] = []
    blank = 0
    with _no_csv_field_limit():
        for line, raw in enumerate(io.StringIO(data.decode("latin-1"), newline=""), start=1):
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
                numbers.append(line)
    columns = [pa.array([r[i].encode("latin-1") for r in rows], pa.binary()) for i in range(len(positions))]
    return RawChunk(columns, np.asarray(numbers, dtype=np.int64), malformed, blank_lines=blank, lines=line)


def _as_text(latin1: str) -> str:
    return latin1.encode("latin-1").decode("utf-8", "backslashreplace")


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


