"""Compiled loops over the bytes of Arrow string columns (numba, no GIL): the validator's hot checks
in one pass per column instead of one pyarrow pass per regex and per condition.

Each kernel takes a column as Arrow lays it out (int32 `offsets`, one per value plus one, into a
uint8 `data` buffer) and byte tables: a uint8 lookup table per byte class, or a DFA of
tasks.campaign.segments.dfa flattened (`table[state * 256 + byte]` is the next state times 256,
0 dead, 1 the start). Loops index with unsigned values and walk slices, so the compiled code has no
negative-index checks. Signatures are given, so the kernels are compiled when this module is
imported, and cached on disk (numba's cache, next to this file or under NUMBA_CACHE_DIR) so later
imports only load them. Reads no luigi.cfg section.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
from numba import njit
from numba import types as nt

if TYPE_CHECKING:
    from numba.core.dispatcher import Dispatcher
    from numba.core.typing import Signature

_Kernel = TypeVar("_Kernel", bound=Callable[..., object])
# what the kernels take and return, for readers and the type checker (numba compiles from the signatures)
_Int32s: TypeAlias = npt.NDArray[np.int32]
_Bytes: TypeAlias = npt.NDArray[np.uint8]
_UInt32s: TypeAlias = npt.NDArray[np.uint32]
_UInt64s: TypeAlias = npt.NDArray[np.uint64]
_Bools: TypeAlias = npt.NDArray[np.bool_]
# inputs: read-only, contiguous views (Arrow buffers, tables); outputs: new arrays
_I4, _U1, _U4 = (nt.Array(t, 1, "C", readonly=True) for t in (nt.int32, nt.uint8, nt.uint32))
_U4X2, _U1X2 = nt.Array(nt.uint32, 2, "C", readonly=True), nt.Array(nt.uint8, 2, "C", readonly=True)
_OUT_B1, _OUT_I4, _OUT_U1 = nt.boolean[:], nt.int32[:], nt.uint8[:]
_STEP_B1, _STEP_I4 = nt.boolean[::1], nt.int32[::1]  # passed from one step of a kernel to the next


def _kernel(signature: Signature) -> Callable[[_Kernel], Dispatcher[_Kernel]]:
    """numba's njit with this module's options: compiled for `signature`, no GIL, cached on disk, no bounds checks."""
    return njit(signature, nogil=True, cache=True, boundscheck=False)


@_kernel(nt.uintp(_U4, _U1))
def run(table: _UInt32s, value: _Bytes) -> np.uintp:
    """The state the DFA ends in after `value` (0: dead). The table holds next states times 256, so a
    step is one add and one load."""
    at = np.uintp(256)
    for byte in value:
        at = np.uintp(table[at + np.uintp(byte)])
        if at == 0:
            break
    return at >> np.uintp(8)


@_kernel(_OUT_B1(_I4, _U1, _U4, _U1))
def full_match(offsets: _Int32s, data: _Bytes, table: _UInt32s, accept: _Bytes) -> _Bools:
    """Which values the DFA matches whole."""
    n = offsets.shape[0] - 1
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        out[i] = accept[run(table, data[np.uintp(offsets[i]):np.uintp(offsets[i + 1])])] != 0
    return out


@_kernel(_OUT_B1(_I4, _U1, _U1, nt.int64, nt.int64))
def all_in_class(offsets: _Int32s, data: _Bytes, allowed: _Bytes, min_length: int, max_length: int) -> _Bools:
    """Which values are `min_length` to `max_length` bytes long, each byte `allowed` (1 in the table)."""
    n = offsets.shape[0] - 1
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        start, end = np.intp(offsets[i]), np.intp(offsets[i + 1])
        if end - start < min_length or end - start > max_length:
            continue
        good = np.uint8(1)
        for byte in data[start:end]:
            good &= allowed[byte]
        out[i] = good != 0
    return out


@_kernel(nt.boolean(_U1))
def all_ascii(data: _Bytes) -> bool:
    """Whether every byte is below 0x80 (a branch-free OR over the bytes, which the compiler vectorises)."""
    seen = np.uint8(0)
    for byte in data:
        seen |= byte
    return bool(seen < 128)


@_kernel(_OUT_B1(_I4, _U1, _U1))
def edge_bytes(offsets: _Int32s, data: _Bytes, edge: _Bytes) -> _Bools:
    """Which non-empty values start or end with a byte in `edge` (1 in the table)."""
    n = offsets.shape[0] - 1
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        start, end = np.uintp(offsets[i]), np.uintp(offsets[i + 1])
        if end > start:
            out[i] = (edge[data[start]] | edge[data[end - np.uintp(1)]]) != 0
    return out


@_kernel(_OUT_B1(_I4, _U1, _U4, _U1, nt.int64, nt.int64))
def email_fast(offsets: _Int32s, data: _Bytes, table: _UInt32s, accept: _Bytes, max_length: int,
               max_local: int) -> _Bools:
    """Which values the DFA matches whole, at most `max_length` bytes long with the first `@` at an
    index of at most `max_local`."""
    n = offsets.shape[0] - 1
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        start, end = np.intp(offsets[i]), np.intp(offsets[i + 1])
        if end - start > max_length:
            continue
        value = data[start:end]
        if not accept[run(table, value)]:
            continue
        at = 0
        for byte in value:
            if byte == 64:
                break
            at += 1
        out[i] = at <= max_local
    return out


@_kernel(nt.Tuple((_OUT_I4, _OUT_U1))(_I4, _U1, _U1))
def drop_bytes(offsets: _Int32s, data: _Bytes, drop: _Bytes) -> tuple[_Int32s, _Bytes]:
    """The column with every byte in `drop` (1 in the table) removed: new offsets and data. Exact for
    ASCII bytes in UTF-8, which never occur inside a multi-byte sequence."""
    n = offsets.shape[0] - 1
    new_offsets = np.empty(n + 1, dtype=np.int32)
    new_data = np.empty(offsets[n] - offsets[0], dtype=np.uint8)
    k = 0
    new_offsets[0] = 0
    for i in range(n):
        for byte in data[np.uintp(offsets[i]):np.uintp(offsets[i + 1])]:
            if not drop[byte]:
                new_data[k] = byte
                k += 1
        new_offsets[i + 1] = k
    return new_offsets, new_data[:k]


@_kernel(nt.Tuple((_STEP_B1, _STEP_B1, _STEP_I4))(_I4, _U1, _I4, _U1, _U4, _U1, _U1))
def _phone_shapes(offsets: _Int32s, data: _Bytes, plain_offsets: _Int32s, plain_data: _Bytes, shape: _UInt32s,
                  shape_accept: _Bytes, calling_code: _Bytes) -> tuple[_Bools, _Bools, _Int32s]:
    """phone_fast's first step, per value: the raw value has the shape of a phone number; its plain form has no
    `+`; where in `plain_data` its national significant number starts (after `+<calling code>`), -1 when it is
    not shaped or is international with another calling code."""
    n = offsets.shape[0] - 1
    shaped = np.zeros(n, dtype=np.bool_)
    national = np.zeros(n, dtype=np.bool_)
    nsn_start = np.full(n, -1, dtype=np.int32)
    code = calling_code.shape[0]
    for i in range(n):
        shaped[i] = shape_accept[run(shape, data[np.uintp(offsets[i]):np.uintp(offsets[i + 1])])] != 0
        start, end = np.intp(plain_offsets[i]), np.intp(plain_offsets[i + 1])
        plus = end > start and plain_data[start] == 43
        national[i] = not plus
        if not shaped[i]:
            continue
        if plus:  # international: +<calling code> then the national number
            if end - start < code + 1:
                continue
            same = True
            for c in range(code):
                same &= plain_data[start + 1 + c] == calling_code[c]
            if not same:
                continue
            start += code + 1
        nsn_start[i] = start
    return shaped, national, nsn_start


@_kernel(_STEP_B1(_I4, _U1, _STEP_I4, _U1, _U4, _U1, _U1, _U4X2, _U1X2, _U1X2))
def _phone_valid(plain_offsets: _Int32s, plain_data: _Bytes, nsn_start: _Int32s, national_prefix: _Bytes,
                 general: _UInt32s, general_accept: _Bytes, general_lengths: _Bytes, types: _UInt32s,
                 types_accept: _Bytes, types_lengths: _Bytes) -> _Bools:
    """phone_fast's second step: which national significant numbers (from `nsn_start`, -1 none) are valid for
    the region: a length the general description allows, not starting with the national prefix, matched by the
    general DFA and by one of the types' DFAs at a length that type allows. A lengths mask says which lengths
    are allowed (1), its last entry standing for every longer one."""
    n = nsn_start.shape[0]
    fast = np.zeros(n, dtype=np.bool_)
    prefix = national_prefix.shape[0]
    for i in range(n):
        if nsn_start[i] < 0:
            continue
        start, end = np.intp(nsn_start[i]), np.intp(plain_offsets[i + 1])
        length = end - start
        if not general_lengths[min(length, general_lengths.shape[0] - 1)]:
            continue
        if prefix and length >= prefix:
            same = True
            for c in range(prefix):
                same &= plain_data[start + c] == national_prefix[c]
            if same:
                continue
        nsn = plain_data[start:end]
        if not general_accept[run(general, nsn)]:
            continue
        for t in range(types.shape[0]):
            if types_lengths[t, min(length, types_lengths.shape[1] - 1)] and types_accept[t, run(types[t], nsn)]:
                fast[i] = True
                break
    return fast


@_kernel(nt.Tuple((_OUT_I4, _OUT_U1))(_I4, _U1, _STEP_I4, _STEP_B1, _U1))
def _phone_e164(plain_offsets: _Int32s, plain_data: _Bytes, nsn_start: _Int32s, fast: _Bools,
                calling_code: _Bytes) -> tuple[_Int32s, _Bytes]:
    """phone_fast's last step: the E.164 column, `+<calling code><national number>` for the `fast` values and
    empty elsewhere."""
    n = nsn_start.shape[0]
    code = calling_code.shape[0]
    e164_offsets = np.zeros(n + 1, dtype=np.int32)
    e164 = np.empty(plain_offsets[n] - plain_offsets[0] + n * (code + 1), dtype=np.uint8)
    k = 0
    for i in range(n):
        e164_offsets[i] = k
        if not fast[i]:
            continue
        e164[k] = 43
        k += 1
        for c in range(code):
            e164[k] = calling_code[c]
            k += 1
        for byte in plain_data[np.uintp(nsn_start[i]):np.uintp(plain_offsets[i + 1])]:
            e164[k] = byte
            k += 1
    e164_offsets[n] = k
    return e164_offsets, e164[:k]


@_kernel(nt.Tuple((_OUT_B1, _OUT_B1, _OUT_B1, _OUT_I4, _OUT_U1))(
    _I4, _U1, _I4, _U1, _U4, _U1, _U1, _U1, _U4, _U1, _U1, _U4X2, _U1X2, _U1X2))
def phone_fast(offsets: _Int32s, data: _Bytes, plain_offsets: _Int32s, plain_data: _Bytes, shape: _UInt32s,
               shape_accept: _Bytes, calling_code: _Bytes, national_prefix: _Bytes, general: _UInt32s,
               general_accept: _Bytes, general_lengths: _Bytes, types: _UInt32s, types_accept: _Bytes,
               types_lengths: _Bytes) -> tuple[_Bools, _Bools, _Bools, _Int32s, _Bytes]:
    """The vectorised is_valid_number of _PhoneFastPath, in three passes over the column.

    `data` are the raw values, `plain_data` the same with the punctuation dropped. Returns
    (shaped, national, fast, E.164 offsets, E.164 data): the raw value has the shape of a phone
    number; its plain form has no `+`; it is valid for the region (`+<calling code>` and the
    national significant number, which _phone_valid accepts). The E.164 column holds the
    numbers of the fast rows (empty elsewhere).
    """
    shaped, national, nsn_start = _phone_shapes(offsets, data, plain_offsets, plain_data, shape, shape_accept,
                                                calling_code)
    fast = _phone_valid(plain_offsets, plain_data, nsn_start, national_prefix, general, general_accept,
                        general_lengths, types, types_accept, types_lengths)
    e164_offsets, e164 = _phone_e164(plain_offsets, plain_data, nsn_start, fast, calling_code)
    return shaped, national, fast, e164_offsets, e164


_H1_SEED, _H2_SEED = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)
_H1_MUL, _H2_MUL = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)


@_kernel(nt.uint64(nt.uint64))
def _fmix64(h: np.uint64) -> np.uint64:
    h ^= h >> np.uint64(33)
    h *= _H1_MUL
    h ^= h >> np.uint64(33)
    h *= _H2_MUL
    h ^= h >> np.uint64(33)
    return h


@_kernel(nt.Tuple((nt.uint64[:], nt.uint64[:]))(_I4, _U1))
def id_hashes(offsets: _Int32s, data: _Bytes) -> tuple[_UInt64s, _UInt64s]:
    """Two independent 64-bit hashes of each value, eight bytes (little-endian) at a time."""
    n = offsets.shape[0] - 1
    h1s = np.empty(n, dtype=np.uint64)
    h2s = np.empty(n, dtype=np.uint64)
    for i in range(n):
        start, end = np.intp(offsets[i]), np.intp(offsets[i + 1])
        length = np.uint64(end - start)
        h1 = _H1_SEED ^ length
        h2 = _H2_SEED + length * _H1_MUL
        for word_start in range(start, end, 8):
            word = np.uint64(0)
            for k in range(min(8, int(end - word_start))):
                word |= np.uint64(data[word_start + k]) << np.uint64(8 * k)
            a = (h1 ^ word) * _H1_MUL
            h1 = a ^ (a >> np.uint64(31))
            b = (h2 + word) * _H2_MUL
            h2 = b ^ (b >> np.uint64(29))
        h1s[i] = _fmix64(h1)
        h2s[i] = _fmix64(h2 ^ _H1_SEED)
    return h1s, h2s


@_kernel(nt.Tuple((_OUT_B1, nt.int64))(nt.uint64[:, ::1], nt.int64, nt.Array(nt.uint64, 1, "C", readonly=True),
                                    nt.Array(nt.uint64, 1, "C", readonly=True)))
def claim(slots: _UInt64s, count: int, h1: _UInt64s, h2: _UInt64s) -> tuple[_Bools, int]:
    """Claim each (h1, h2) in order in the open-addressing set `slots` (rows of (h1, h2), (0, 0) empty,
    linear probing, a power-of-two length with room for every key): which were claimed already, by an
    earlier call or an earlier key of this one, and the set's new count. A key (0, 0) is stored as (0, 1)."""
    mask = np.uint64(slots.shape[0] - 1)
    seen = np.zeros(h1.shape[0], dtype=np.bool_)
    for i in range(h1.shape[0]):
        a, b = h1[i], h2[i]
        if a == 0 and b == 0:
            b = np.uint64(1)
        at = a & mask
        while True:
            x, y = slots[at, 0], slots[at, 1]
            if x == a and y == b:
                seen[i] = True
                break
            if x == 0 and y == 0:
                slots[at, 0] = a
                slots[at, 1] = b
                count += 1
                break
            at = (at + np.uint64(1)) & mask
    return seen, count


@_kernel(nt.void(nt.Array(nt.uint64, 2, "C", readonly=True), nt.uint64[:, ::1]))
def rehash(old: _UInt64s, new: _UInt64s) -> None:
    """Move the keys of `old` into the empty, larger set `new`."""
    mask = np.uint64(new.shape[0] - 1)
    for i in range(old.shape[0]):
        a, b = old[i, 0], old[i, 1]
        if a == 0 and b == 0:
            continue
        at = a & mask
        while new[at, 0] != 0 or new[at, 1] != 0:
            at = (at + np.uint64(1)) & mask
        new[at, 0] = a
        new[at, 1] = b
