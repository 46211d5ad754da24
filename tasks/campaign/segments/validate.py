"""Customer-segment CSV -> validated Parquet: the pure core of LoadSegments (imports no luigi).

The task reads `[segments]` in luigi.cfg and passes it here as `LoadOptions`; this module
reads no configuration itself.

A CSV with columns customer_id, segment, email, phone, device_token (header matched
case- and whitespace-insensitively, extra columns ignored) is streamed in chunks of
`chunk_rows` rows, so memory stays bounded whatever the file size (the set of seen
customer ids is the only thing that grows). Each chunk is validated with vectorised
pyarrow compute; only values off the fast path (unusual e-mails and phone numbers) go
through email-validator / phonenumbers, one call per distinct value (lru_cache).

A row is rejected as a whole when it is malformed (wrong field count, undecodable bytes,
a field over `max_field_length`, blank), its customer_id is missing or already seen (the
first row wins), its segment is not allowed, or it has no valid address for any channel.
Otherwise it is valid; an invalid address for one channel is nulled and recorded as an
issue for that channel only. Always: rows_read == valid + rejected.

Parsing uses pyarrow's streaming CSV reader; if it gives up (a row longer than its block),
the whole load restarts on Python's csv module, which has no row-size limit.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import csv
import datetime
import functools
import io
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import email_validator
import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from phonenumbers.phonemetadata import PhoneMetadata

from tasks.errors import CheckFailure, DataValidationError
from tasks.files import atomic_open, atomic_path, write_json_atomic

CUSTOMERS_FILE = "customers.parquet"
REJECTS_FILE = "rejects.csv"
SUMMARY_FILE = "summary.json"

REQUIRED_COLUMNS = ("customer_id", "segment", "email", "phone", "device_token")
# channel -> the address column of customers.parquet it sends to
CHANNEL_COLUMNS = {"email": "email", "sms": "phone", "push": "device_token"}
CUSTOMERS_SCHEMA = pa.schema([(name, pa.string()) for name in REQUIRED_COLUMNS])
REJECTS_HEADER = ("line_number", "scope", "reason", "detail", *REQUIRED_COLUMNS, "raw_line")

# Row reasons, in precedence order: a row gets the first that applies.
UNDECODABLE = "undecodable"
WRONG_FIELD_COUNT = "wrong_field_count"
FIELD_TOO_LONG = "field_too_long"
EMPTY_ROW = "empty_row"
MISSING_ID = "missing_customer_id"
DUPLICATE_ID = "duplicate_customer_id"
INVALID_SEGMENT = "invalid_segment"
NO_VALID_ADDRESS = "no_valid_address"

_ARROW_BLOCK_SIZE = 4 << 20  # rows longer than this make the arrow reader give up (csv fallback)
_CACHE_SIZE = 65_536

# A strict subset of what email-validator accepts, checked with RE2 on whole columns; anything
# else (quoted or unicode local parts, IDNA, odd lengths, special-use domains) goes to email-validator.
_EMAIL_FAST_RE = (
    r"(?i)^[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)
_EMAIL_SLOW_DOMAIN_RE = r"(?i)(?:--|[@.](?:" + "|".join(
    d.replace(".", r"\.") for d in email_validator.SPECIAL_USE_DOMAIN_NAMES
) + r")$)"
_PHONE_SHAPE_RE = r"^(?:\+?[0-9]+|\([0-9]+\))(?:[ .-]?(?:[0-9]+|\([0-9]+\)))*$"
_PHONE_PUNCT = b" .()-"  # removed before the fast path's patterns are applied


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


def load_segments(input_path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                  options: LoadOptions = LoadOptions()) -> LoadResult:
    """Validate `input_path` into customers.parquet, rejects.csv and summary.json under `out_dir`.

    Raises DataValidationError when the file is missing, empty or lacks required columns
    (nothing written), or when the rejected share exceeds `max_reject_ratio` (rejects.csv
    written so the operator can see why; no customers.parquet, no summary.json).
    """
    path = Path(input_path)
    out = Path(out_dir)
    started = time.monotonic()
    if not path.is_file():
        raise DataValidationError("segments CSV", [CheckFailure("input_exists", f"no such file: {path}")])
    header = _read_header(path, options.encoding)
    positions = _required_positions(header)
    try:
        counts = _stream(path, out, options, _arrow_chunks(path, len(header), positions, options.chunk_rows))
    except _ArrowReaderGaveUp:
        counts = _stream(path, out, options, _python_chunks(path, len(header), positions, options.chunk_rows))
    return _finish(path, out, options, counts, time.monotonic() - started)


# ---------------------------------------------------------------------------------------------
# Reading: both readers yield _RawChunk objects holding raw bytes, so decoding and validation
# are shared. Line numbers count CSV records with the header as line 1 (they equal the file's
# line numbers unless a quoted field spans several lines).


@dataclass
class _Malformed:
    line_number: int
    reason: str
    detail: str
    raw_line: str


@dataclass
class _RawChunk:
    columns: list[pa.Array]  # binary, one per REQUIRED_COLUMNS entry
    line_numbers: np.ndarray
    malformed: list[_Malformed] = field(default_factory=list)


class _ArrowReaderGaveUp(Exception):
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


def _read_header(path: Path, encoding: str) -> list[str]:
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
        decoded = _decode(raw, encoding)
        names.append(decoded if decoded is not None else raw.decode("utf-8", "backslashreplace"))
    return names


def _required_positions(header: Sequence[str]) -> list[int]:
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


def _arrow_chunks(path: Path, width: int, positions: list[int], chunk_rows: int) -> Iterator[_RawChunk]:
    """Stream the file with pyarrow's CSV reader, all columns as raw bytes."""
    names = [f"c{i}" for i in range(width)]
    skipped: collections.deque[_Malformed] = collections.deque()

    def on_invalid(row: pacsv.InvalidRow) -> str:
        try:
            text = row.text
        except UnicodeDecodeError:
            text = "<undecodable>"
        skipped.append(_Malformed(row.number, WRONG_FIELD_COUNT,
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
        raise _ArrowReaderGaveUp(str(exc)) from exc
    next_line = 2
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    batches = iter(reader)
    while True:
        try:
            batch = next(batches, None)
        except pa.ArrowInvalid as exc:
            raise _ArrowReaderGaveUp(str(exc)) from exc
        if batch is not None and batch.num_rows:
            pending.append(batch)
            pending_rows += batch.num_rows
        if pending and (pending_rows >= chunk_rows or batch is None):
            columns = [pa.concat_arrays([b.column(i) for b in pending]) for i in range(len(positions))]
            lines, malformed, next_line = _number_rows(pending_rows, next_line, skipped)
            yield _RawChunk(columns, lines, malformed)
            pending, pending_rows = [], 0
        if batch is None:
            break
    if skipped:
        yield _RawChunk([pa.array([], pa.binary())] * len(positions), np.empty(0, np.int64), list(skipped))


def _number_rows(count: int, first: int, skipped: collections.deque[_Malformed]
                 ) -> tuple[np.ndarray, list[_Malformed], int]:
    """Line numbers of `count` parsed rows starting at `first`, stepping over the skipped ones."""
    taken: list[_Malformed] = []
    end = first + count
    while skipped and skipped[0].line_number < end + len(taken):
        taken.append(skipped.popleft())
    end += len(taken)
    lines = np.arange(first, end, dtype=np.int64)
    if taken:
        lines = lines[~np.isin(lines, [m.line_number for m in taken])]
    return lines, taken, end


def _python_chunks(path: Path, width: int, positions: list[int], chunk_rows: int) -> Iterator[_RawChunk]:
    """Stream the file with the csv module (no row-size limit); latin-1 keeps every byte as is."""
    with _no_csv_field_limit(), open(path, encoding="latin-1", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        rows: list[list[str]] = []
        lines: list[int] = []
        malformed: list[_Malformed] = []
        line = 1
        for fields in reader:
            line += 1
            if not fields:  # a blank line: the arrow reader sees it as a row of empty fields
                fields = [""] * width
            if len(fields) != width:
                raw = _joined(fields).encode("latin-1").decode("utf-8", "backslashreplace")
                malformed.append(_Malformed(line, WRONG_FIELD_COUNT,
                                            f"{width} fields expected, {len(fields)} found", raw))
            else:
                rows.append([fields[p] for p in positions])
                lines.append(line)
            if len(rows) >= chunk_rows:
                yield _python_chunk(rows, lines, malformed, len(positions))
                rows, lines, malformed = [], [], []
        if rows or malformed:
            yield _python_chunk(rows, lines, malformed, len(positions))


def _python_chunk(rows: list[list[str]], lines: list[int], malformed: list[_Malformed], width: int) -> _RawChunk:
    columns = [pa.array([r[i].encode("latin-1") for r in rows], pa.binary()) for i in range(width)]
    return _RawChunk(columns, np.asarray(lines, dtype=np.int64), malformed)


def _joined(fields: Sequence[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue()


def _decode(raw: bytes, encoding: str) -> str | None:
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


def _decode_column(column: pa.Array, encoding: str) -> tuple[pa.Array, np.ndarray, int]:
    """(strings with null where undecodable, undecodable mask, values decoded with the fallback)."""
    try:
        return column.cast(pa.string()), np.zeros(len(column), dtype=bool), 0
    except pa.ArrowInvalid:
        pass
    values: list[str | None] = []
    bad, fallback = np.zeros(len(column), dtype=bool), 0
    for i, raw in enumerate(column.to_pylist()):
        try:
            values.append(raw.decode("utf-8"))
            continue
        except UnicodeDecodeError:
            text = _decode(raw, encoding)
        bad[i] = text is None
        fallback += text is not None
        values.append(text)
    return pa.array(values, pa.string()), bad, fallback


# ---------------------------------------------------------------------------------------------
# Validation


def _trim(column: pa.Array) -> pa.Array:
    """utf8_trim_whitespace, applied only to the values that start or end with whitespace.

    Trimming copies every value (and is slow on long ones such as device tokens); finding
    the few values that need it is cheap. Same result: a value is changed by the trim exactly
    when its first or last character is whitespace (the same Unicode definition).
    """
    edges = pc.or_(pc.utf8_is_space(pc.utf8_slice_codeunits(column, 0, 1)),
                   pc.utf8_is_space(pc.utf8_slice_codeunits(column, -1)))
    needs = _mask(edges)
    if not needs.any():
        return column
    mask = pa.array(needs)
    return pc.replace_with_mask(column, mask, pc.utf8_trim_whitespace(pc.filter(column, mask)))


def _remove_ascii(column: pa.Array, chars: bytes) -> pa.Array:
    """`column` with every occurrence of the ASCII characters `chars` removed (one numpy pass).

    Same as a regex replace of the character class with "", at a fraction of the cost: ASCII
    bytes never occur inside a multi-byte UTF-8 sequence, so dropping them byte-wise is exact.
    """
    if column.null_count or column.offset or not len(column) or column.type != pa.string():
        pattern = "[" + "".join("\\" + chr(c) for c in chars) + "]"
        return pc.replace_substring_regex(column, pattern, "")
    _, offsets_buf, data_buf = column.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32, count=len(column) + 1)
    data = np.frombuffer(data_buf, dtype=np.uint8, count=int(offsets[-1])) if data_buf else np.zeros(0, np.uint8)
    drop = np.zeros(256, dtype=bool)
    drop[list(chars)] = True
    keep = ~drop[data]
    kept_before = np.zeros(len(data) + 1, dtype=np.int32)  # int32 offsets: the data is < 2 GiB
    np.cumsum(keep, out=kept_before[1:])
    new_offsets = kept_before[offsets]
    return pa.StringArray.from_buffers(len(column), pa.py_buffer(new_offsets), pa.py_buffer(data[keep]))


def _mask(array: pa.Array) -> np.ndarray:
    """A boolean pyarrow array as a numpy mask, null counting as False."""
    return pc.fill_null(array, False).to_numpy(zero_copy_only=False)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _slow_email(value: str) -> str | None:
    try:
        return email_validator.validate_email(value, check_deliverability=False).normalized.lower()
    except email_validator.EmailNotValidError:
        return None


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _slow_phone(value: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class _PhoneFastPath:
    """Vectorised is_valid_number for plain-digit numbers of the default region.

    Built from the region's phonenumbers metadata (the same patterns phonenumbers applies),
    only for regions where that is exact: the main region of its calling code, no leading
    digits, and a plain-digit national prefix (numbers starting with it take the slow path).
    """

    calling_code: str
    national_prefix: str
    general: tuple[str, tuple[int, ...]]
    types: tuple[tuple[str, tuple[int, ...]], ...]  # one alternation per group of types sharing lengths

    @staticmethod
    @functools.lru_cache(maxsize=16)
    def for_region(region: str) -> _PhoneFastPath | None:
        metadata = PhoneMetadata.metadata_for_region(region.upper())
        if metadata is None or metadata.leading_digits:
            return None
        code = metadata.country_code
        if phonenumbers.region_code_for_country_code(code) != region.upper():
            return None
        prefix = metadata.national_prefix_for_parsing or ""
        if prefix and not prefix.isdigit():
            return None

        def desc(d: object) -> tuple[str, tuple[int, ...]] | None:
            pattern = getattr(d, "national_number_pattern", None)
            if not pattern:
                return None
            declared = tuple(getattr(d, "possible_length", None) or ())
            lengths = tuple(n for n in declared if n > 0)
            if declared and not lengths:  # (-1,): no number of this type exists
                return None
            return pattern, lengths

        general = desc(metadata.general_desc)
        if general is None:
            return None
        names = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
                 "voicemail", "fixed_line", "mobile")
        groups: dict[tuple[int, ...], list[str]] = {}
        for d in (desc(getattr(metadata, n, None)) for n in names):
            if d is not None and d[0] not in groups.setdefault(d[1], []):
                groups[d[1]].append(d[0])
        types = tuple((_anchored("|".join(p)), lengths) for lengths, p in groups.items())
        fast = _PhoneFastPath(str(code), prefix, (_anchored(general[0]), general[1]), types)
        try:  # RE2 must accept every pattern, else no fast path at all
            fast.valid(pa.array(["0"]))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        return fast

    def valid(self, nsn: pa.Array) -> pa.Array:
        length = pc.utf8_length(nsn)

        def matches(desc: tuple[str, tuple[int, ...]]) -> pa.Array:
            pattern, lengths = desc
            hit = pc.match_substring_regex(nsn, pattern)
            return pc.and_(hit, pc.is_in(length, pa.array(lengths, pa.int32()))) if lengths else hit

        any_type = functools.reduce(pc.or_, (matches(d) for d in self.types), pa.repeat(False, len(nsn)))
        result = pc.and_(matches(self.general), any_type)
        if self.national_prefix:
            result = pc.and_(result, pc.invert(pc.starts_with(nsn, self.national_prefix)))
        return result


def _anchored(pattern: str) -> str:
    return f"^(?:{pattern})$"


@dataclass
class _Checked:
    """One validated chunk."""

    customers: pa.Table
    reject_rows: list[tuple]
    rows: int
    rejected_by_reason: collections.Counter
    issues_by_reason: dict[str, collections.Counter]
    valid_per_channel: collections.Counter
    decoded_with_fallback: int


class _Validator:
    """Validates chunks in file order; remembers the customer ids already seen (first row wins)."""

    def __init__(self, options: LoadOptions):
        self.options = options
        self.allowed = pa.array(sorted({s.strip().lower() for s in options.segments if s.strip()}), pa.string())
        self.seen: set[str] = set()
        self.phone_fast = _PhoneFastPath.for_region(options.default_region)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="segments")

    def __enter__(self) -> _Validator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def check(self, chunk: _RawChunk) -> _Checked:
        o = self.options
        n = len(chunk.line_numbers)
        decoded, undecodable, fallback = [], np.zeros(n, dtype=bool), 0
        for column in chunk.columns:
            text, bad, used = _decode_column(column, o.encoding)
            decoded.append(text)
            undecodable |= bad
            fallback += used
        too_long = np.zeros(n, dtype=bool)
        long_field = np.full(n, -1)
        for i, column in enumerate(decoded):
            over = _mask(pc.greater(pc.binary_length(column), o.max_field_length))
            if over.any():
                over = _mask(pc.greater(pc.utf8_length(column), o.max_field_length))
            long_field[over & (long_field < 0)] = i
            too_long |= over
        values = [pc.fill_null(_trim(c), "") for c in decoded]
        cid, seg_raw, email_raw, phone_raw, token_raw = values
        blank = np.ones(n, dtype=bool)
        for v in values:
            blank &= _mask(pc.equal(v, ""))
        blank &= ~undecodable
        segment = pc.utf8_lower(seg_raw)
        bad_segment = ~_mask(pc.is_in(segment, self.allowed))
        missing_id = _mask(pc.equal(cid, "")) & ~blank

        malformed = undecodable | too_long | blank

        phones = self.pool.submit(self._phones, phone_raw)
        tokens = self.pool.submit(self._tokens, token_raw)
        email, email_issue = self._emails(email_raw)
        duplicate = self._duplicates(cid, ~malformed & ~missing_id)
        (phone, phone_issue), (token, token_issue) = phones.result(), tokens.result()
        has_address = _mask(pc.is_valid(email)) | _mask(pc.is_valid(phone)) | _mask(pc.is_valid(token))

        reasons = np.select(
            [undecodable, too_long, blank, missing_id, duplicate, bad_segment, ~has_address],
            [UNDECODABLE, FIELD_TOO_LONG, EMPTY_ROW, MISSING_ID, DUPLICATE_ID, INVALID_SEGMENT, NO_VALID_ADDRESS],
            default="",
        )
        valid = reasons == ""
        valid_arr = pa.array(valid)
        customers = pa.Table.from_arrays(
            [pc.filter(a, valid_arr) for a in (cid, segment, email, phone, token)], schema=CUSTOMERS_SCHEMA
        )

        issues = {"email": email_issue & valid, "sms": phone_issue & valid, "push": token_issue & valid}
        rejected = ~valid
        reject_rows = self._reject_rows(chunk, decoded, reasons, rejected, issues, long_field)
        rejected_by_reason = collections.Counter(reasons[rejected].tolist())
        rejected_by_reason.update(m.reason for m in chunk.malformed)
        return _Checked(
            customers=customers,
            reject_rows=reject_rows,
            rows=n + len(chunk.malformed),
            rejected_by_reason=rejected_by_reason,
            issues_by_reason={
                scope: collections.Counter({_ISSUE_REASON[scope]: int(mask.sum())}) for scope, mask in issues.items()
            },
            valid_per_channel=collections.Counter(
                {ch: customers.num_rows - customers.column(col).null_count for ch, col in CHANNEL_COLUMNS.items()}
            ),
            decoded_with_fallback=fallback,
        )

    def _duplicates(self, cid: pa.Array, eligible: np.ndarray) -> np.ndarray:
        """Rows whose id an earlier eligible row already claimed (this chunk or a previous one).

        One hash pass (dictionary_encode: codes in order of first appearance) finds the repeats
        inside the chunk; only the chunk's distinct ids meet the Python set of earlier ids.
        """
        duplicate = np.zeros(len(cid), dtype=bool)
        rows = np.flatnonzero(eligible)
        if len(rows) == 0:
            return duplicate
        ids = cid if len(rows) == len(cid) else pc.take(cid, pa.array(rows))
        encoded = pc.dictionary_encode(ids)
        codes = encoded.indices.to_numpy()
        # a code is new exactly when it exceeds every code before it (codes are handed out in order)
        first = np.empty(len(codes), dtype=bool)
        first[0] = True
        first[1:] = codes[1:] > np.maximum.accumulate(codes)[:-1]
        duplicate[rows[~first]] = True  # an earlier row of this chunk has the id
        distinct_ids = encoded.dictionary.to_pylist()
        claimed = self.seen.intersection(distinct_ids)
        if claimed:  # a row of an earlier chunk has the id
            earlier = _mask(pc.is_in(encoded.dictionary, value_set=pa.array(list(claimed), pa.string())))
            duplicate[rows[earlier[codes]]] = True
        self.seen.update(distinct_ids)
        return duplicate

    def _emails(self, raw: pa.Array) -> tuple[pa.Array, np.ndarray]:
        present = ~_mask(pc.equal(raw, ""))
        at = pc.find_substring(raw, "@").to_numpy(zero_copy_only=False)
        fast = (
            _mask(pc.match_substring_regex(raw, _EMAIL_FAST_RE))
            & ~_mask(pc.match_substring_regex(raw, _EMAIL_SLOW_DOMAIN_RE))
            & _mask(pc.less_equal(pc.utf8_length(raw), 254))
            & (at <= 64)
        )
        result = pc.if_else(pa.array(fast), pc.ascii_lower(raw), pa.nulls(len(raw), pa.string()))  # fast path is ASCII
        # without an @ no library call is needed: email-validator rejects it too
        result = _fill_slow(result, raw, present & ~fast & (at >= 0), _slow_email)
        return result, present & ~_mask(pc.is_valid(result))

    def _phones(self, raw: pa.Array) -> tuple[pa.Array, np.ndarray]:
        present = ~_mask(pc.equal(raw, ""))
        result = pa.nulls(len(raw), pa.string())
        fast = np.zeros(len(raw), dtype=bool)
        if self.phone_fast is not None:
            plain = _remove_ascii(raw, _PHONE_PUNCT)
            shaped = _mask(pc.match_substring_regex(raw, _PHONE_SHAPE_RE))
            intl_prefix = "+" + self.phone_fast.calling_code
            intl = _mask(pc.starts_with(plain, intl_prefix))
            national = ~_mask(pc.starts_with(plain, "+"))
            nsn = pc.if_else(pa.array(intl), pc.utf8_slice_codeunits(plain, len(intl_prefix)), plain)
            fast = shaped & (intl | national) & _mask(self.phone_fast.valid(nsn))
            e164 = pc.binary_join_element_wise(intl_prefix, nsn, "")
            result = pc.if_else(pa.array(fast), e164, result)
        region = self.options.default_region.upper()
        result = _fill_slow(result, raw, present & ~fast, lambda v: _slow_phone(v, region))
        return result, present & ~_mask(pc.is_valid(result))

    def _tokens(self, raw: pa.Array) -> tuple[pa.Array, np.ndarray]:
        o = self.options
        present = ~_mask(pc.equal(raw, ""))
        length = pc.utf8_length(raw)
        ok = (
            _mask(pc.match_substring_regex(raw, r"^[A-Za-z0-9_:-]+$"))
            & _mask(pc.greater_equal(length, o.device_token_min_length))
            & _mask(pc.less_equal(length, o.device_token_max_length))
        )
        result = pc.if_else(pa.array(ok), raw, pa.nulls(len(raw), pa.string()))
        return result, present & ~ok

    def _reject_rows(self, chunk: _RawChunk, decoded: list[pa.Array], reasons: np.ndarray,
                     rejected: np.ndarray, issues: dict[str, np.ndarray], long_field: np.ndarray) -> list[tuple]:
        """rejects.csv rows of this chunk, in line order: rejected rows and per-channel issues."""
        out: list[tuple] = [(m.line_number, "row", m.reason, m.detail, *[""] * 5, m.raw_line) for m in chunk.malformed]
        wanted = rejected.copy()
        for mask in issues.values():
            wanted |= mask
        index = np.flatnonzero(wanted)
        if len(index) == 0:
            return sorted(out, key=lambda r: r[0])
        take = pa.array(index)
        raw_columns = [_raw_texts(pc.take(col, take), pc.take(raw, take), self.options.max_field_length)
                       for col, raw in zip(decoded, chunk.columns, strict=True)]
        for j, i in enumerate(index.tolist()):
            fields = [col[j] for col in raw_columns]
            line = int(chunk.line_numbers[i])
            if rejected[i]:
                reason = str(reasons[i])
                detail = _ROW_DETAIL.get(reason, "")
                if reason == FIELD_TOO_LONG:
                    detail = f"{REQUIRED_COLUMNS[long_field[i]]} longer than {self.options.max_field_length} chars"
                out.append((line, "row", reason, detail, *fields, ""))
            else:
                for scope, mask in issues.items():
                    if mask[i]:
                        out.append((line, scope, _ISSUE_REASON[scope], _ISSUE_DETAIL[scope], *fields, ""))
        return sorted(out, key=lambda r: r[0])


_ISSUE_REASON = {"email": "invalid_email", "sms": "invalid_phone", "push": "invalid_device_token"}
_ISSUE_DETAIL = {
    "email": "not a valid e-mail address; e-mail not sent",
    "sms": "not a valid phone number for its region; SMS not sent",
    "push": "device token has the wrong length or characters; push not sent",
}
_ROW_DETAIL = {
    UNDECODABLE: "bytes are neither UTF-8 nor the fallback encoding",
    EMPTY_ROW: "blank line",
    MISSING_ID: "customer_id is empty",
    DUPLICATE_ID: "an earlier row has this customer_id",
    INVALID_SEGMENT: "segment is not in [segments] segments",
    NO_VALID_ADDRESS: "no valid e-mail, phone or device token",
}


def _fill_slow(result: pa.Array, raw: pa.Array, todo: np.ndarray, check) -> pa.Array:
    """Replace `result` where `todo` with check(raw value) (one library call per distinct value)."""
    if not todo.any():
        return result
    values = pc.filter(raw, pa.array(todo)).to_pylist()
    return pc.replace_with_mask(result, pa.array(todo), pa.array([check(v) for v in values], pa.string()))


def _raw_texts(text: pa.Array, raw: pa.Array, limit: int) -> list[str]:
    """Raw field values for rejects.csv: undecodable bytes shown escaped, huge fields truncated."""
    out = []
    for value, blob in zip(text.to_pylist(), raw.to_pylist(), strict=True):
        if value is None:
            value = blob.decode("utf-8", "backslashreplace")
        if len(value) > limit:
            value = f"{value[:limit]}...[truncated, {len(value)} chars]"
        out.append(value)
    return out


# ---------------------------------------------------------------------------------------------
# Writing


@dataclass
class _Counts:
    rows_read: int = 0
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


def _stream(path: Path, out: Path, options: LoadOptions, chunks: Iterator[_RawChunk]) -> _Counts:
    """Validate chunk by chunk into customers.parquet and rejects.csv; the ratio gate sits between."""
    validator = _Validator(options)
    counts = _Counts()
    customers_path, rejects_path = out / CUSTOMERS_FILE, out / REJECTS_FILE
    with atomic_path(customers_path) as parquet_tmp:
        with (
            atomic_open(rejects_path, "w", encoding="utf-8", newline="") as rejects_fh,
            pq.ParquetWriter(parquet_tmp, CUSTOMERS_SCHEMA, compression="snappy", use_dictionary=["segment"],
                             write_statistics=["customer_id", "segment"]) as writer,
            validator,
        ):
            rejects = csv.writer(rejects_fh)
            rejects.writerow(REJECTS_HEADER)
            writing: concurrent.futures.Future | None = None
            for chunk in chunks:
                checked = validator.check(chunk)
                if writing is not None:
                    writing.result()
                writing = validator.pool.submit(writer.write_table, checked.customers)
                rejects.writerows(checked.reject_rows)
                counts.rows_read += checked.rows
                counts.valid += checked.customers.num_rows
                counts.rejected_by_reason.update(checked.rejected_by_reason)
                for scope, counter in checked.issues_by_reason.items():
                    counts.issues_by_reason[scope].update(counter)
                counts.valid_per_channel.update(checked.valid_per_channel)
                counts.decoded_with_fallback += checked.decoded_with_fallback
                assert counts.rows_read == counts.valid + counts.rejected, "rows_read != valid + rejected"
            if writing is not None:
                writing.result()
            if counts.rows_read == 0:
                raise DataValidationError("segments CSV", [CheckFailure("not_empty", "the file has no data rows")])
        # rejects.csv is published here, before the gate, so a failed load still shows why
        ratio = counts.rejected / counts.rows_read
        if ratio > options.max_reject_ratio:
            customers_path.unlink(missing_ok=True)
            (out / SUMMARY_FILE).unlink(missing_ok=True)
            raise DataValidationError("segments CSV", [CheckFailure(
                "max_reject_ratio",
                f"{counts.rejected} of {counts.rows_read} rows rejected "
                f"({ratio:.1%} > {options.max_reject_ratio:.1%}); "
                f"by reason: {dict(sorted(counts.rejected_by_reason.items()))}; see {rejects_path}",
            )])
    return counts


def _finish(path: Path, out: Path, options: LoadOptions, counts: _Counts, duration: float) -> LoadResult:
    """Write summary.json (the completion target) last."""
    summary = {
        "rows_read": counts.rows_read,
        "valid": counts.valid,
        "rejected": counts.rejected,
        "rejected_by_reason": dict(sorted(counts.rejected_by_reason.items())),
        "channel_issues_by_reason": {
            scope: {k: v for k, v in sorted(c.items()) if v} for scope, c in counts.issues_by_reason.items()
        },
        "valid_per_channel": {ch: counts.valid_per_channel.get(ch, 0) for ch in CHANNEL_COLUMNS},
        "decoded_with_fallback_encoding": counts.decoded_with_fallback,
        "input_path": str(path),
        "duration_s": round(duration, 3),
    }
    assert summary["rows_read"] == summary["valid"] + summary["rejected"]
    summary_path = out / SUMMARY_FILE
    write_json_atomic(summary_path, summary)
    return LoadResult(summary, out / CUSTOMERS_FILE, out / REJECTS_FILE, summary_path)
