"""Compiled loops over the bytes of Arrow string columns (numba, no GIL): the validator's hot checks
in one pass per column instead of one pyarrow pass per regex and per condition.

Each kernel takes a column as Arrow lays it out (int32 `offsets`, one per value plus one, into a
uint8 `data` buffer) and byte tables: a uint8 lookup table per byte class, or a DFA of
tasks.campaign.segments.dfa flattened (`table[state * 256 + byte]` is the next state, 0 dead,
1 the start). Loops index with unsigned values and walk slices, so the compiled code has no
negative-index checks. Signatures are given, so the kernels are compiled when this module is
imported, and cached on disk (numba's cache, next to this file or under NUMBA_CACHE_DIR) so later
imports only load them. Reads no luigi.cfg section.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba import types as nt

_OPTS = {"nogil": True, "cache": True, "boundscheck": False}
# inputs: read-only, contiguous views (Arrow buffers, tables); outputs: new arrays
_I4, _U1, _U4 = (nt.Array(t, 1, "C", readonly=True) for t in (nt.int32, nt.uint8, nt.uint32))
_U4X2, _U1X2 = nt.Array(nt.uint32, 2, "C", readonly=True), nt.Array(nt.uint8, 2, "C", readonly=True)
_OUT_B1, _OUT_I4, _OUT_U1 = nt.boolean[:], nt.int32[:], nt.uint8[:]


@njit(nt.uintp(_U4, _U1), **_OPTS)
def run(table, value):  # noqa: ANN001, ANN201
    """The state the DFA ends in after `value` (0: dead)."""
    state = np.uintp(1)
    for byte in value:
        state = np.uintp(table[(state << np.uintp(8)) | np.uintp(byte)])
        if state == 0:
            break
    return state


@njit(_OUT_B1(_I4, _U1, _U4, _U1), **_OPTS)
def full_match(offsets, data, table, accept):  # noqa: ANN001, ANN201
    """Which values the DFA matches whole."""
    n = offsets.shape[0] - 1
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        out[i] = accept[run(table, data[np.uintp(offsets[i]):np.uintp(offsets[i + 1])])] != 0
    return out


@njit(_OUT_B1(_I4, _U1, _U1, nt.int64, nt.int64), **_OPTS)
def all_in_class(offsets, data, allowed, min_length, max_length):  # noqa: ANN001, ANN201
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


@njit(_OUT_B1(_I4, _U1, _U1), **_OPTS)
def edge_bytes(offsets, data, edge):  # noqa: ANN001, ANN201
    """Which non-empty values start or end with a byte in `edge` (1 in the table)."""
    n = offsets.shape[0] - 1
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        start, end = np.uintp(offsets[i]), np.uintp(offsets[i + 1])
        if end > start:
            out[i] = (edge[data[start]] | edge[data[end - np.uintp(1)]]) != 0
    return out


@njit(_OUT_B1(_I4, _U1, _U4, _U1, nt.int64, nt.int64), **_OPTS)
def email_fast(offsets, data, table, accept, max_length, max_local):  # noqa: ANN001, ANN201
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


@njit(nt.Tuple((_OUT_I4, _OUT_U1))(_I4, _U1, _U1), **_OPTS)
def drop_bytes(offsets, data, drop):  # noqa: ANN001, ANN201
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


@njit(nt.Tuple((_OUT_B1, _OUT_B1, _OUT_B1, _OUT_I4, _OUT_U1))(
    _I4, _U1, _I4, _U1, _U4, _U1, _U1, _U1, _U4, _U1, _U1, _U4X2, _U1X2, _U1X2), **_OPTS)
def phone_fast(offsets, data, plain_offsets, plain_data, shape, shape_accept, calling_code,  # noqa: ANN001, ANN201
               national_prefix, general, general_accept, general_lengths, types, types_accept, types_lengths):
    """The vectorised is_valid_number of _PhoneFastPath, one value at a time.

    `data` are the raw values, `plain_data` the same with the punctuation dropped. Returns
    (shaped, national, fast, E.164 offsets, E.164 data): the raw value has the shape of a phone
    number; its plain form has no `+`; it is valid for the region (`+<calling code>` and the
    national significant number, which the general DFA and one of the types' match, at a length
    each allows, and which does not start with the national prefix). The E.164 column holds the
    numbers of the fast rows (empty elsewhere). A lengths mask says which lengths are allowed
    (1), its last entry standing for every longer one.
    """
    n = offsets.shape[0] - 1
    shaped = np.zeros(n, dtype=np.bool_)
    national = np.zeros(n, dtype=np.bool_)
    fast = np.zeros(n, dtype=np.bool_)
    code = calling_code.shape[0]
    prefix = national_prefix.shape[0]
    e164_offsets = np.zeros(n + 1, dtype=np.int32)
    e164 = np.empty(plain_offsets[n] - plain_offsets[0] + n * (code + 1), dtype=np.uint8)
    k = 0
    for i in range(n):
        e164_offsets[i] = k
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
        any_type = False
        for t in range(types.shape[0]):
            if types_lengths[t, min(length, types_lengths.shape[1] - 1)] and types_accept[t, run(types[t], nsn)]:
                any_type = True
                break
        if not any_type:
            continue
        fast[i] = True
        e164[k] = 43
        k += 1
        for c in range(code):
            e164[k] = calling_code[c]
            k += 1
        for byte in nsn:
            e164[k] = byte
            k += 1
    e164_offsets[n] = k
    return shaped, national, fast, e164_offsets, e164[:k]
