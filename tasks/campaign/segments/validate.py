"""Validating one RawChunk: decode, trim, ids, segments, e-mails, phones, device tokens.

Vectorised with pyarrow compute; only values off the strict fast paths (checked against the
libraries in the tests) go through email-validator and phonenumbers, one call per distinct
value. Remembers the customer ids seen so far (the first row wins). Reads no luigi.cfg section.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
from dataclasses import dataclass

import email_validator
import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers.phonemetadata import PhoneMetadata

from tasks.campaign.segments.model import (
    BLANK_LINE,
    CHANNEL_COLUMNS,
    CUSTOMERS_SCHEMA,
    DUPLICATE_ID,
    FIELD_TOO_LONG,
    INVALID_SEGMENT,
    MISSING_ID,
    NO_VALID_ADDRESS,
    REQUIRED_COLUMNS,
    UNDECODABLE,
    LoadOptions,
    RawChunk,
)
from tasks.campaign.segments.read import decode

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
            text = decode(raw, encoding)
        bad[i] = text is None
        fallback += text is not None
        values.append(text)
    return pa.array(values, pa.string()), bad, fallback


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
    blank_rows: int
    rejected_by_reason: collections.Counter
    issues_by_reason: dict[str, collections.Counter]
    valid_per_channel: collections.Counter
    decoded_with_fallback: int


class Validator:
    """Validates chunks in file order; remembers the customer ids already seen (first row wins)."""

    def __init__(self, options: LoadOptions):
        self.options = options
        self.allowed = pa.array(sorted({s.strip().lower() for s in options.segments if s.strip()}), pa.string())
        self.seen: set[str] = set()
        self.phone_fast = _PhoneFastPath.for_region(options.default_region)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="segments")

    def __enter__(self) -> Validator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def check(self, chunk: RawChunk) -> _Checked:
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

        # a row of empty fields (a blank line, or `,,,,` as spreadsheets export an empty row) is no
        # customer: counted in blank_lines, never a reject
        reasons = np.select(
            [blank, undecodable, too_long, missing_id, duplicate, bad_segment, ~has_address],
            [BLANK_LINE, UNDECODABLE, FIELD_TOO_LONG, MISSING_ID, DUPLICATE_ID, INVALID_SEGMENT, NO_VALID_ADDRESS],
            default="",
        )
        valid = reasons == ""
        valid_arr = pa.array(valid)
        customers = pa.Table.from_arrays(
            [pc.filter(a, valid_arr) for a in (cid, segment, email, phone, token)], schema=CUSTOMERS_SCHEMA
        )

        issues = {"email": email_issue & valid, "sms": phone_issue & valid, "push": token_issue & valid}
        rejected = ~valid & ~blank
        reject_rows = self._reject_rows(chunk, decoded, reasons, rejected, issues, long_field)
        rejected_by_reason = collections.Counter(reasons[rejected].tolist())
        rejected_by_reason.update(m.reason for m in chunk.malformed)
        return _Checked(
            customers=customers,
            reject_rows=reject_rows,
            rows=n + len(chunk.malformed),
            blank_rows=int(blank.sum()),
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

    def _reject_rows(self, chunk: RawChunk, decoded: list[pa.Array], reasons: np.ndarray,
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


