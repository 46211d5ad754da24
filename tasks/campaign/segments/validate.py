"""Validating one RawChunk: decode, trim, ids, segments, e-mails, phones, device tokens.

Vectorised with pyarrow compute, numpy and the compiled kernels of kernels.py: the strict fast
paths (checked against the libraries in the tests) are their regular expressions compiled into
DFAs (dfa.py) and run one pass per column; only values off them go through email-validator and
phonenumbers, one call per distinct value. The default region's automata and the e-mail
automaton are built on import (about 0.1 s), not in a load. Remembers the customer ids seen so
far as hashes (the first row wins), and numbers the lines, one chunk at a time in file order.
Reads no luigi.cfg section.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import email_validator
import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers.phonemetadata import PhoneMetadata

from tasks.addresses import normalise_email, normalise_phone
from tasks.campaign.segments import kernels
from tasks.campaign.segments.dfa import Dfa, UnsupportedPatternError, compile_dfa
from tasks.campaign.segments.model import (
    BLANK_LINE,
    CHANNEL_COLUMNS,
    DUPLICATE_ID,
    FIELD_TOO_LONG,
    INVALID_SEGMENT,
    MISSING_ID,
    NO_VALID_ADDRESS,
    REQUIRED_COLUMNS,
    UNDECODABLE,
    LoadOptions,
    RawChunk,
    customers_schema,
)
from tasks.campaign.segments.read import decode

_CACHE_SIZE = 65_536

# A strict subset of what email-validator accepts, run as a DFA (ASCII only) on whole columns; anything
# else (quoted or unicode local parts, IDNA, odd lengths, special-use domains) goes to email-validator.
_EMAIL_FAST_RE = (
    r"(?i)^[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)
_PHONE_SHAPE_RE = r"^(?:\+?[0-9]+|\([0-9]+\))(?:[ .-]?(?:[0-9]+|\([0-9]+\)))*$"
_PHONE_PUNCT = b" .()-"  # removed before the fast path's patterns are applied
_PHONE_DROP = np.zeros(256, dtype=np.uint8)
_PHONE_DROP[list(_PHONE_PUNCT)] = 1
_TOKEN_BYTES = np.zeros(256, dtype=np.uint8)  # a device token: ^[A-Za-z0-9_:-]+$
_TOKEN_BYTES[list(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:-")] = 1

# pyarrow imports pandas the first time it converts from numpy (0.4 s): pay that on import, not in a load
pa.array(np.zeros(1, dtype=bool))


def _decode_column(column: pa.Array, encoding: str) -> tuple[pa.Array, np.ndarray, int]:
    """(strings with null where undecodable, undecodable mask, values decoded with the fallback)."""
    offsets, data = _buffers(column)
    if kernels.all_ascii(data[offsets[0]:offsets[-1]]):  # ASCII is UTF-8: the same bytes, viewed as strings
        return column.view(pa.string()), np.zeros(len(column), dtype=bool), 0
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
    """utf8_trim_whitespace, applied only to the values that may start or end with whitespace.

    Trimming copies every value (and is slow on long ones such as device tokens); finding the
    few values that need it is one look at each value's first and last byte: ASCII whitespace,
    or any non-ASCII byte (Unicode spaces are multi-byte), sends the value to the real trim.
    """
    needs = kernels.edge_bytes(*_buffers(column), _EDGE_BYTES)
    if not needs.any():
        return column
    mask = pa.array(needs)
    return pc.replace_with_mask(column, mask, pc.utf8_trim_whitespace(pc.filter(column, mask)))


_EDGE_BYTES = np.zeros(256, dtype=np.uint8)
_EDGE_BYTES[[*range(0x09, 0x0E), *range(0x1C, 0x21), *range(0x80, 0x100)]] = 1


def _mask(array: pa.Array) -> np.ndarray:
    """A boolean pyarrow array as a numpy mask, null counting as False (unpacked from its bitmap)."""
    if array.null_count:
        array = pc.fill_null(array, False)
    bits = np.frombuffer(array.buffers()[1], dtype=np.uint8)
    return np.unpackbits(bits, count=array.offset + len(array), bitorder="little")[array.offset:].view(bool)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _slow_email(value: str) -> str | None:
    return normalise_email(value)  # trimmed already


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _slow_phone(value: str, region: str) -> str | None:
    return normalise_phone(value, region)


@dataclass(frozen=True)
class _PhoneFastPath:
    """Vectorised is_valid_number for plain-digit numbers of the default region.

    Built from the region's phonenumbers metadata (the same patterns phonenumbers applies),
    only for regions where that is exact: the main region of its calling code, no leading
    digits, and a plain-digit national prefix (numbers starting with it take the slow path).

    It also settles numbers that cannot be valid: phonenumbers would keep all their digits (they
    cannot start with a calling code, national prefix or IDD prefix) and no type of any region
    sharing the calling code matches them, so such numbers skip the slow path too.
    """

    calling_code: str
    national_prefix: str
    general: tuple[str, tuple[int, ...]]
    types: tuple[tuple[str, tuple[int, ...]], ...]  # one alternation per group of types sharing lengths
    all_types: tuple[tuple[str, tuple[int, ...]], ...] = ()  # every region of the calling code; () no rule
    strippable: str = ""  # first digits phonenumbers might strip something from

    @staticmethod
    @functools.lru_cache(maxsize=16)
    def for_region(region: str) -> _PhoneFastPath | None:
        metadata = PhoneMetadata.metadata_for_region(region.upper())
        if metadata is None or metadata.leading_digits:
            return None
        code = metadata.country_code
        if code is None or phonenumbers.region_code_for_country_code(code) != region.upper():
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
        def type_groups(*regions: PhoneMetadata) -> tuple[tuple[str, tuple[int, ...]], ...]:
            groups: dict[tuple[int, ...], list[str]] = {}
            for d in (desc(getattr(m, n, None)) for m in regions for n in names):
                if d is not None and d[0] not in groups.setdefault(d[1], []):
                    groups[d[1]].append(d[0])
            return tuple((_anchored("|".join(p)), lengths) for lengths, p in groups.items())

        types = type_groups(metadata)
        idd = metadata.international_prefix or ""
        all_types: tuple[tuple[str, tuple[int, ...]], ...] = ()
        if idd.isdigit():  # else the IDD prefix is a pattern: no rule
            all_types = type_groups(*(m for other in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ())
                                      if (m := PhoneMetadata.metadata_for_region(other)) is not None))
        fast = _PhoneFastPath(str(code), prefix, (_anchored(general[0]), general[1]), types, all_types,
                              "".join(sorted({str(code)[0], prefix[:1], idd[:1]} - {""})))
        try:  # the valid-number patterns as DFAs
            fast.automata()
        except UnsupportedPatternError:
            return None
        try:  # the impossible-number patterns too, else no such rule (those numbers take the slow path)
            fast.impossible_automata()
        except UnsupportedPatternError:
            return dataclasses.replace(fast, all_types=())
        return fast

    @functools.cache  # noqa: B019 - one per region (for_region caches the instances)
    def automata(self) -> tuple[np.ndarray, ...]:
        """kernels.phone_fast's arguments from `calling_code` on: the patterns of `general` and of each
        group of `types` as DFAs, each with a mask of the lengths it allows (the last entry standing
        for every longer length)."""
        descs = (self.general, *self.types)
        dfas = [compile_dfa(pattern) for pattern, _ in descs]
        width = max((n for _, lengths in descs for n in lengths), default=0) + 2
        masks = np.zeros((len(descs), width), dtype=bool)
        for row, (_, lengths) in zip(masks, descs, strict=True):
            if lengths:
                row[list(lengths)] = True
            else:
                row[:] = True
        states = max(d.table.shape[0] for d in dfas[1:]) if self.types else 1
        tables = np.zeros((max(1, len(self.types)), states * 256), dtype=np.uint32)
        accepts = np.zeros((max(1, len(self.types)), states), dtype=np.uint8)
        for i, d in enumerate(dfas[1:]):
            tables[i, :len(d.flat)] = d.flat
            accepts[i, :len(d.accepts)] = d.accepts
        masks = masks.astype(np.uint8)
        type_masks = masks[1:] if self.types else np.zeros((1, width), dtype=np.uint8)
        return (np.frombuffer(self.calling_code.encode(), dtype=np.uint8),
                np.frombuffer(self.national_prefix.encode(), dtype=np.uint8),
                dfas[0].flat, dfas[0].accepts, masks[0], tables, accepts, np.ascontiguousarray(type_masks))

    @functools.cache  # noqa: B019 - one per region (for_region caches the instances)
    def impossible_automata(self) -> tuple[tuple[Dfa, np.ndarray], ...]:
        """The patterns of `all_types` as DFAs, each with the lengths it allows (empty: any)."""
        return tuple((compile_dfa(pattern), np.asarray(lengths, dtype=np.int64)) for pattern, lengths in self.all_types)

    def impossible(self, plain: pa.Array) -> np.ndarray:
        """National numbers (digits only) that are valid in no region of the calling code, where
        phonenumbers would keep every digit (no leading digit it could strip a prefix from)."""
        impossible = np.zeros(len(plain), dtype=bool)
        if not self.all_types or not len(plain):
            return impossible
        offsets, data = _buffers(plain)
        length = np.diff(offsets)
        keeps_all = np.ones(len(plain), dtype=bool)
        if self.strippable:
            nonempty = length > 0
            first_digits = data[offsets[:-1][nonempty]]
            keeps_all[nonempty] = ~np.isin(first_digits, np.frombuffer(self.strippable.encode(), np.uint8))
        possible = np.zeros(len(plain), dtype=bool)
        for dfa, lengths in self.impossible_automata():
            hit = kernels.full_match(offsets, data, dfa.flat, dfa.accepts)
            if len(lengths):
                hit &= np.isin(length, lengths)
            possible |= hit
        return keeps_all & ~possible


def _anchored(pattern: str) -> str:
    return f"^(?:{pattern})$"


@dataclass
class Checked:
    """One validated chunk."""

    customers: pa.Table
    reject_rows: list[tuple]
    rows: int  # records and malformed lines (blank lines are counted apart)
    blank_rows: int  # blank lines and rows of empty fields
    rejected_by_reason: collections.Counter
    issues_by_reason: dict[str, collections.Counter]
    valid_per_channel: collections.Counter
    decoded_with_fallback: int


class InOrder:
    """Lets chunks validated in parallel pass one short step in file order (chunk 0, 1, 2, ...).

    If a chunk fails, the ones behind it fail too instead of waiting forever; the ones before
    it go on, so the first error in file order is the one reported.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0
        self._failed: int | None = None  # the first chunk that failed

    @contextlib.contextmanager
    def turn(self, index: int) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self._next == index or self._behind_failure(index))
            if self._behind_failure(index):
                raise RuntimeError(f"chunk {index} not validated: chunk {self._failed} failed")
        try:
            yield
        except BaseException:
            self.abandon(index)
            raise
        with self._cond:
            self._next += 1
            self._cond.notify_all()

    def abandon(self, index: int = -1) -> None:
        """Chunk `index` failed (-1: stop them all)."""
        with self._cond:
            self._failed = index if self._failed is None else min(self._failed, index)
            self._cond.notify_all()

    def _behind_failure(self, index: int) -> bool:
        return self._failed is not None and index > self._failed


class SeenIds:
    """The customer ids claimed so far, as 128-bit hashes in an open-addressing set (16 bytes a slot,
    at most 70% full; never the ids themselves).

    Two ids are taken as equal when both 64-bit halves of their hashes are; for 10 million
    distinct ids the chance that any two collide is about 1e-24. A claim is one probe into the set
    (kernels.claim), in the order given, so the first of equal ids wins.
    """

    _MAX_LOAD = 0.7

    def __init__(self, expected: int = 0) -> None:
        """`expected`: about how many ids will be claimed (the set is sized for them, so it need not grow
        and rehash on the way; np.zeros leaves untouched pages unallocated)."""
        size = 1024
        while expected > self._MAX_LOAD * size:
            size *= 2
        self._slots = np.zeros((size, 2), dtype=np.uint64)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def claim(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        """Claim the ids of these hashes in order: which were claimed before (by an earlier call, or an
        earlier entry of this one)."""
        needed = self._count + len(h1)
        if needed > self._MAX_LOAD * len(self._slots):
            size = len(self._slots)
            while needed > self._MAX_LOAD * size:
                size *= 2
            grown = np.zeros((size, 2), dtype=np.uint64)
            kernels.rehash(self._slots, grown)
            self._slots = grown
        seen, self._count = kernels.claim(self._slots, self._count, h1, h2)
        return seen


def id_hashes(ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of each string, eight bytes at a time (kernels.id_hashes)."""
    return kernels.id_hashes(*_buffers(ids))


def _buffers(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data) of a string or binary array as numpy views, the array's own slice of offsets."""
    _, offsets_buf, data_buf = column.buffers()[:3]
    offsets = np.frombuffer(offsets_buf, dtype=np.int32, count=len(column) + 1, offset=column.offset * 4)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return offsets, data


class Validator:
    """Validates chunks, in parallel threads if wanted, as if in file order.

    Everything but the duplicate-id check and the line numbering is per chunk; those two pass
    one chunk at a time in file order (`InOrder`), so the first row of an id wins whatever the
    threads do. Remembers the ids already seen (SeenIds).
    """

    def __init__(self, options: LoadOptions, first_line: int = 2, extras: tuple[str, ...] = (),
                 expected_rows: int = 0) -> None:
        self.options = options
        self.extras = tuple(extras)  # extra columns, carried as template fields (null when empty)
        self.names = (*REQUIRED_COLUMNS, *self.extras)
        self.schema = customers_schema(self.extras)
        self.allowed = pa.array(sorted({s.strip().lower() for s in options.segments if s.strip()}), pa.string())
        self.seen = SeenIds(expected_rows)
        self.phone_fast = _PhoneFastPath.for_region(options.default_region)
        self.order = InOrder()
        self._next_line = first_line  # the file line number of the next chunk's first line

    def check(self, chunk: RawChunk, index: int) -> Checked:
        """Validate chunk number `index` (chunks are numbered from 0 in file order, each checked once)."""
        n = len(chunk.line_numbers)
        decoded, undecodable, fallback = self._decode(chunk, n)
        too_long, long_field = self._too_long(decoded, n)
        values = [_trim(pc.fill_null(c, "")) for c in decoded]
        cid, seg_raw, email_raw, phone_raw, token_raw = values[:len(REQUIRED_COLUMNS)]
        blank = ~undecodable
        for v in values:
            blank &= np.diff(_buffers(v)[0]) == 0
        segment = pc.utf8_lower(seg_raw)
        bad_segment = ~_mask(pc.is_in(segment, self.allowed))
        missing_id = (np.diff(_buffers(cid)[0]) == 0) & ~blank
        malformed = undecodable | too_long | blank
        eligible = np.flatnonzero(~malformed & ~missing_id)  # rows that claim their id (the first one wins)
        ids = cid if len(eligible) == n else pc.take(cid, pa.array(eligible))
        h1, h2 = id_hashes(ids)

        email, email_issue = self._emails(email_raw)
        phone, phone_issue = self._phones(phone_raw)
        token, token_issue = self._tokens(token_raw)
        has_address = _valid(email) | _valid(phone) | _valid(token)

        first_line, duplicate = self._claim_in_order(chunk, index, h1, h2, eligible)
        # a row of empty fields (a blank line, or `,,,,` as spreadsheets export an empty row) is no
        # customer: counted in blank_lines, never a reject
        reasons = np.select(
            [blank, undecodable, too_long, missing_id, duplicate, bad_segment, ~has_address],
            list(range(1, len(_REASONS))), default=0,
        )
        valid = reasons == 0
        customers = self._customers((cid, segment, email, phone, token), values[len(REQUIRED_COLUMNS):], valid)
        issues = {"email": email_issue & valid, "sms": phone_issue & valid, "push": token_issue & valid}
        rejected = ~valid & ~blank
        reject_rows = self._reject_rows(chunk, chunk.line_numbers + (first_line - 1), first_line - 1, decoded,
                                        reasons, rejected, issues, long_field)
        return self._checked(chunk, customers, reject_rows, reasons[rejected], blank, issues, fallback)

    def _decode(self, chunk: RawChunk, n: int) -> tuple[list[pa.Array], np.ndarray, int]:
        """The chunk's columns as text, which rows have bytes neither encoding decodes, and how many values
        were decoded with the fallback encoding."""
        decoded: list[pa.Array] = []
        undecodable, fallback = np.zeros(n, dtype=bool), 0
        for column in chunk.columns:
            text, bad, used = _decode_column(column, self.options.encoding)
            decoded.append(text)
            undecodable |= bad
            fallback += used
        return decoded, undecodable, fallback

    def _too_long(self, decoded: list[pa.Array], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Which rows have a field over max_field_length characters, and the first such column of each (-1)."""
        limit = self.options.max_field_length
        too_long = np.zeros(n, dtype=bool)
        long_field = np.full(n, -1)
        for i, column in enumerate(decoded):
            over = np.diff(_buffers(column)[0]) > limit  # bytes >= characters
            if over.any():
                over = _mask(pc.greater(pc.utf8_length(column), limit))
            long_field[over & (long_field < 0)] = i
            too_long |= over
        return too_long, long_field

    def _claim_in_order(self, chunk: RawChunk, index: int, h1: np.ndarray, h2: np.ndarray,
                        eligible: np.ndarray) -> tuple[int, np.ndarray]:
        """In file order (`InOrder`): the file line of the chunk's first line, and which rows repeat an id an
        earlier row (of this chunk or an earlier one) has claimed."""
        with self.order.turn(index):
            first_line = self._next_line
            self._next_line += chunk.lines
            claimed = self.seen.claim(h1, h2)
        duplicate = np.zeros(len(chunk.line_numbers), dtype=bool)
        duplicate[eligible[claimed]] = True
        return first_line, duplicate

    def _customers(self, required: tuple[pa.Array, ...], extra_values: list[pa.Array],
                   valid: np.ndarray) -> pa.Table:
        """The valid rows as a customers table (extra columns null where empty)."""
        columns = (*required, *(_empty_as_null(v) for v in extra_values))
        if not valid.all():
            keep = pa.array(valid)
            columns = tuple(pc.filter(a, keep) for a in columns)
        return pa.Table.from_arrays(list(columns), schema=self.schema)

    @staticmethod
    def _checked(chunk: RawChunk, customers: pa.Table, reject_rows: list[tuple], rejected_reasons: np.ndarray,
                 blank: np.ndarray, issues: dict[str, np.ndarray], fallback: int) -> Checked:
        """The chunk's result: its customers and rejects, and the counts the load report sums."""
        rejected_by_reason = collections.Counter(_REASONS[r] for r in rejected_reasons.tolist())
        rejected_by_reason.update(m.reason for m in chunk.malformed)
        return Checked(
            customers=customers,
            reject_rows=reject_rows,
            rows=len(chunk.line_numbers) + len(chunk.malformed),
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

    def _emails(self, raw: pa.Array) -> tuple[pa.Array, np.ndarray]:
        offsets, data = _buffers(raw)
        present = np.diff(offsets) > 0
        dfa = _EMAIL_DFA
        # ASCII only (the DFA has no other byte): bytes == characters
        fast = kernels.email_fast(offsets, data, dfa.flat, dfa.accepts, 254, 64)
        result = _with_validity(pc.ascii_lower(raw), fast)
        # without an @ no library call is needed: email-validator rejects it too
        todo = present & ~fast
        if todo.any():
            todo[todo] = pc.find_substring(pc.filter(raw, pa.array(todo)), "@").to_numpy() >= 0
        result = _fill_slow(result, raw, todo, _slow_email)
        return result, present & ~_valid(result)

    def _phones(self, raw: pa.Array) -> tuple[pa.Array, np.ndarray]:
        offsets, data = _buffers(raw)
        present = np.diff(offsets) > 0
        result = pa.nulls(len(raw), pa.string())
        if self.phone_fast is not None:
            plain_offsets, plain_data = kernels.drop_bytes(offsets, data, _PHONE_DROP)
            shape = compile_dfa(_PHONE_SHAPE_RE)
            shaped, national, fast, e164_offsets, e164 = kernels.phone_fast(
                offsets, data, plain_offsets, plain_data, shape.flat, shape.accepts, *self.phone_fast.automata())
            result = pa.StringArray.from_buffers(len(raw), pa.py_buffer(e164_offsets), pa.py_buffer(e164),
                                                 pa.py_buffer(np.packbits(fast, bitorder="little")))
            left = np.flatnonzero(present & shaped & national & ~fast)  # few: settle the impossible ones here
            settled = fast.copy()
            if len(left):
                plain = pa.StringArray.from_buffers(len(raw), pa.py_buffer(plain_offsets), pa.py_buffer(plain_data))
                settled[left] = self.phone_fast.impossible(pc.take(plain, pa.array(left)))
        else:
            settled = np.zeros(len(raw), dtype=bool)
        region = self.options.default_region.upper()
        result = _fill_slow(result, raw, present & ~settled, lambda v: _slow_phone(v, region))
        return result, present & ~_valid(result)

    def _tokens(self, raw: pa.Array) -> tuple[pa.Array, np.ndarray]:
        o = self.options
        offsets, data = _buffers(raw)
        ok = kernels.all_in_class(offsets, data, _TOKEN_BYTES, o.device_token_min_length, o.device_token_max_length)
        result = raw if ok.all() else _with_validity(raw, ok)
        return result, (np.diff(offsets) > 0) & ~ok

    def _reject_rows(self, chunk: RawChunk, line_numbers: np.ndarray, offset: int, decoded: list[pa.Array],
                     reasons: np.ndarray, rejected: np.ndarray, issues: dict[str, np.ndarray],
                     long_field: np.ndarray) -> list[tuple]:
        """rejects.csv rows of this chunk, in line order: rejected rows and per-channel issues."""
        out: list[tuple] = [(m.line_number + offset, "row", m.reason, m.detail, *[""] * len(self.names), m.raw_line)
                            for m in chunk.malformed]
        wanted = rejected.copy()
        for mask in issues.values():
            wanted |= mask
        index = np.flatnonzero(wanted)
        if len(index) == 0:
            return sorted(out, key=lambda r: r[0])
        take = pa.array(index)
        raw_columns = [_raw_texts(pc.take(col, take), raw, take, self.options.max_field_length)
                       for col, raw in zip(decoded, chunk.columns, strict=True)]
        # plain lists, not numpy scalars, in the loop (a few thousand rows a chunk)
        scopes = [(scope, mask[index].tolist(), _ISSUE_REASON[scope], _ISSUE_DETAIL[scope])
                  for scope, mask in issues.items()]
        for j, (fields, line, is_rejected, reason_index, long_index) in enumerate(zip(
                zip(*raw_columns, strict=True), line_numbers[index].tolist(), rejected[index].tolist(),
                reasons[index].tolist(), long_field[index].tolist(), strict=True)):
            if is_rejected:
                reason = _REASONS[reason_index]
                detail = _ROW_DETAIL.get(reason, "")
                if reason == FIELD_TOO_LONG:
                    detail = f"{self.names[long_index]} longer than {self.options.max_field_length} chars"
                out.append((line, "row", reason, detail, *fields, ""))
            else:
                for scope, mask, issue, issue_detail in scopes:
                    if mask[j]:
                        out.append((line, scope, issue, issue_detail, *fields, ""))
        return sorted(out, key=lambda r: r[0])


# reasons[i] indexes this: 0 is a valid row, then the np.select conditions of Validator.check in order
_REASONS = ("", BLANK_LINE, UNDECODABLE, FIELD_TOO_LONG, MISSING_ID, DUPLICATE_ID, INVALID_SEGMENT, NO_VALID_ADDRESS)


def _email_automaton() -> Dfa:
    """The fast e-mail pattern, minus what email-validator treats specially: `--` anywhere (IDNA) or a
    special-use domain name as the last label (the pattern needs a dot after the @)."""
    names = "|".join(re.escape(name) for name in email_validator.SPECIAL_USE_DOMAIN_NAMES)
    special = compile_dfa(rf"(?i)[\x00-\x7f]*(?:--[\x00-\x7f]*|\.(?:{names}))")
    return compile_dfa(_EMAIL_FAST_RE).minus(special)


_EMAIL_DFA = _email_automaton()  # built on import (~0.1 s), not in a load


def _with_validity(column: pa.Array, valid: np.ndarray) -> pa.Array:
    """`column` (no nulls, no offset) with null where not `valid` (the values stay behind the nulls)."""
    if column.null_count or column.offset:
        return pc.if_else(pa.array(valid), column, pa.nulls(len(column), column.type))
    _, offsets, data = column.buffers()
    return pa.StringArray.from_buffers(len(column), offsets, data, pa.py_buffer(np.packbits(valid, bitorder="little")))


def _empty_as_null(column: pa.Array) -> pa.Array:
    """An extra column with null for empty values (a template then uses its default)."""
    empty = np.diff(_buffers(column)[0]) == 0
    if not empty.any():
        return column
    return pc.if_else(pa.array(empty), pa.nulls(len(column), pa.string()), column)


def _valid(array: pa.Array) -> np.ndarray:
    """Not null, as a numpy mask."""
    if array.null_count == 0:
        return np.ones(len(array), dtype=bool)
    return _mask(pc.is_valid(array))


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


def _fill_slow(result: pa.Array, raw: pa.Array, todo: np.ndarray, check: Callable[[str], str | None]) -> pa.Array:
    """Replace `result` where `todo` with check(raw value) (one library call per distinct value)."""
    if not todo.any():
        return result
    values = pc.filter(raw, pa.array(todo)).to_pylist()
    return pc.replace_with_mask(result, pa.array(todo), pa.array([check(v) for v in values], pa.string()))


def _raw_texts(text: pa.Array, raw: pa.Array, take: pa.Array, limit: int) -> list[str]:
    """Raw field values for rejects.csv (`text` the decoded values at `take`, `raw` the whole raw column):
    undecodable bytes shown escaped, huge fields truncated."""
    values = text.to_pylist()
    if text.null_count:
        blobs = pc.take(raw, take).to_pylist()
        values = [v if v is not None else b.decode("utf-8", "backslashreplace")
                  for v, b in zip(values, blobs, strict=True)]
    return [v if len(v) <= limit else f"{v[:limit]}...[truncated, {len(v)} chars]" for v in values]


_PhoneFastPath.for_region(LoadOptions.default_region)  # the default region's DFAs built on import, not in a load
