"""Small regular expressions compiled into byte-level DFAs, for the validator's compiled kernels.

A pattern is parsed with Python's own regex parser (`re._parser`), built into an NFA (Thompson)
and determinised (subset construction over classes of equivalent bytes). Only a subset of the
syntax is supported, the one whose meaning is the same byte by byte as character by character:
ASCII literals and classes (ranges, `\\d` as [0-9]), `|`, groups, `?`, `*`, `+`, `{n,m}`,
`^` at the start and `$` at the end, and ASCII-only case folding for `(?i)`. Anything else
(negated classes, `.`, non-ASCII literals, look-arounds, back-references, anchors inside the
pattern) raises UnsupportedPatternError, and the caller keeps its RE2 path.

Because every class is ASCII, a value with a non-ASCII byte never matches. RE2 folds case over
Unicode under `(?i)` (`[a-z]` then matches U+017F and U+212A); this compiler does not, so its
language is a subset of RE2's, never a superset: a fast path built on it stays a strict subset
of what the library it stands for accepts. Reads no luigi.cfg section.
"""

from __future__ import annotations

import functools
import re
import re._constants as _c  # the regex parser's own modules (Python 3.11+, the package's floor)
import re._parser as _parser
from collections.abc import Iterable
from typing import Any

import numpy as np

_MAX_STATES = 20_000  # a bigger DFA is not worth building here: UnsupportedPatternError


class UnsupportedPatternError(ValueError):
    """The pattern uses syntax this compiler does not translate (the caller keeps its RE2 path)."""


class Dfa:
    """A full-match automaton: `table[state, byte]` is the next state (0 is dead), start state 1.

    `flat` and `accepts` are the forms the kernels take: uint32 `flat[state * 256 + byte]`, the next
    state times 256 (one add and one load a step), and a uint8 accept flag per state.
    """

    def __init__(self, table: np.ndarray, accept: np.ndarray) -> None:
        self.table = table  # int32 [states, 256]
        self.accept = accept  # bool [states]
        self.flat = np.ascontiguousarray(table, dtype=np.uint32).ravel() << np.uint32(8)
        self.accepts = accept.astype(np.uint8)

    def minus(self, other: Dfa) -> Dfa:
        """The values this DFA matches and `other` does not (the product automaton, one pass)."""
        # bytes that neither table tells apart share a column of the product
        columns = np.concatenate([self.table, other.table]).T
        _, reps, byte_class = np.unique(columns, axis=0, return_index=True, return_inverse=True)
        index = {(0, 0): 0, (1, 1): 1}
        order = [(0, 0), (1, 1)]
        rows = [[0] * len(reps)]
        i = 1
        while i < len(order):
            a, b = order[i]
            row = []
            for byte in reps.tolist():
                key = (int(self.table[a, byte]), int(other.table[b, byte]))
                if key[0] == 0:
                    key = (0, 0)  # this one dead: the product is dead
                if key not in index:
                    if len(order) >= _MAX_STATES:
                        raise UnsupportedPatternError(f"more than {_MAX_STATES} states")
                    index[key] = len(order)
                    order.append(key)
                row.append(index[key])
            rows.append(row)
            i += 1
        table = np.asarray(rows, dtype=np.int32)[:, np.asarray(byte_class).ravel()]
        accept = np.array([self.accept[a] and not other.accept[b] for a, b in order], dtype=bool)
        accept[0] = False
        return Dfa(np.ascontiguousarray(table), accept)

    def fullmatch(self, value: bytes) -> bool:
        """The automaton run in Python (for tests)."""
        state = 1
        for b in value:
            state = int(self.table[state, b])
            if state == 0:
                return False
        return bool(self.accept[state])


@functools.lru_cache(maxsize=64)
def compile_dfa(pattern: str) -> Dfa:
    """The DFA of `pattern` matched against a whole value (as `^(?:pattern)$`)."""
    parsed = _parser.parse(pattern)
    fold = bool(parsed.state.flags & re.IGNORECASE)
    if parsed.state.flags & ~(re.IGNORECASE | re.UNICODE):
        raise UnsupportedPatternError(f"flags {parsed.state.flags:#x}")
    items = list(parsed)
    if items and items[0] == (_c.AT, _c.AT_BEGINNING):
        items = items[1:]
    if items and items[-1] in ((_c.AT, _c.AT_END), (_c.AT, _c.AT_END_STRING)):
        items = items[:-1]
    nfa = _Nfa(fold)
    start, end = nfa.sequence(items)
    return nfa.determinise(start, end)


class _Nfa:
    def __init__(self, fold: bool) -> None:
        self.fold = fold
        self.eps: list[list[int]] = []
        self.moves: list[list[tuple[frozenset[int], int]]] = []

    def state(self) -> int:
        self.eps.append([])
        self.moves.append([])
        return len(self.eps) - 1

    def sequence(self, items: Iterable[tuple[Any, Any]]) -> tuple[int, int]:
        start = end = self.state()
        for item in items:
            a, b = self.node(item)
            self.eps[end].append(a)
            end = b
        return start, end

    def byteset(self, chars: set[int]) -> tuple[int, int]:
        if any(c > 0x7F for c in chars):
            raise UnsupportedPatternError("a non-ASCII character")
        if self.fold:
            chars = chars | {c ^ 0x20 for c in chars if 0x41 <= (c & ~0x20) <= 0x5A}
        a, b = self.state(), self.state()
        self.moves[a].append((frozenset(chars), b))
        return a, b

    def node(self, item: tuple[Any, Any]) -> tuple[int, int]:
        op, arg = item
        if op is _c.LITERAL:
            return self.byteset({arg})
        if op is _c.IN:
            chars: set[int] = set()
            for kind, value in arg:
                if kind is _c.LITERAL:
                    chars.add(value)
                elif kind is _c.RANGE:
                    chars.update(range(value[0], value[1] + 1))
                elif kind is _c.CATEGORY and value is _c.CATEGORY_DIGIT:
                    chars.update(range(0x30, 0x3A))
                else:
                    raise UnsupportedPatternError(f"class item {kind} {value}")
            return self.byteset(chars)
        if op is _c.SUBPATTERN:
            _group, add_flags, del_flags, sub = arg
            if add_flags or del_flags:
                raise UnsupportedPatternError("flags inside a group")
            return self.sequence(sub)
        if op is _c.BRANCH:
            a, b = self.state(), self.state()
            for alternative in arg[1]:
                x, y = self.sequence(alternative)
                self.eps[a].append(x)
                self.eps[y].append(b)
            return a, b
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
            if op is not _c.MAX_REPEAT and op is not _c.MIN_REPEAT:
                raise UnsupportedPatternError("possessive repeat")
            low, high, sub = arg
            start = end = self.state()
            for _ in range(low):
                x, y = self.sequence(sub)
                self.eps[end].append(x)
                end = y
            if high == _c.MAXREPEAT:
                x, y = self.sequence(sub)
                self.eps[end].append(x)
                self.eps[y].append(x)
                done = self.state()
                self.eps[end].append(done)
                self.eps[y].append(done)
                return start, done
            done = self.state()
            for _ in range(high - low):
                self.eps[end].append(done)
                x, y = self.sequence(sub)
                self.eps[end].append(x)
                end = y
            self.eps[end].append(done)
            return start, done
        raise UnsupportedPatternError(f"{op}")

    def closure(self, states: frozenset[int]) -> frozenset[int]:
        seen = set(states)
        stack = list(states)
        while stack:
            for nxt in self.eps[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return frozenset(seen)

    def determinise(self, start: int, end: int) -> Dfa:
        # bytes that no transition tells apart share a class
        signature: dict[int, list[int]] = {b: [] for b in range(256)}
        sets = {chars for moves in self.moves for chars, _ in moves}
        for i, chars in enumerate(sets):
            for b in chars:
                signature[b].append(i)
        classes: dict[tuple[int, ...], list[int]] = {}
        for b in range(256):
            classes.setdefault(tuple(signature[b]), []).append(b)
        reps = [members for key, members in classes.items() if key]  # bytes in no set go to the dead state
        first = self.closure(frozenset({start}))
        index = {frozenset(): 0, first: 1}
        order = [frozenset(), first]
        rows: list[list[int]] = [[0] * len(reps), []]
        i = 1
        while i < len(order):
            current = order[i]
            row = []
            for members in reps:
                b = members[0]
                target = frozenset(t for s in current for chars, t in self.moves[s] if b in chars)
                target = self.closure(target) if target else frozenset()
                if target not in index:
                    if len(order) >= _MAX_STATES:
                        raise UnsupportedPatternError(f"more than {_MAX_STATES} states")
                    index[target] = len(order)
                    order.append(target)
                    rows.append([])
                row.append(index[target])
            rows[i] = row
            i += 1
        table = np.zeros((len(order), 256), dtype=np.int32)
        for k, members in enumerate(reps):
            column = np.array([r[k] for r in rows], dtype=np.int32)
            table[:, members] = column[:, None]
        accept = np.array([end in s for s in order], dtype=bool)
        return Dfa(table, accept)
