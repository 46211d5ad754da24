"""The table graph: which spec's table each spec reads, from its SELECT and `depends_on` (pure; no luigi).

A spec's SELECT is parsed with sqlglot (Snowflake dialect); the tables it reads are the `exp.Table`
sources of every scope (`traverse_scope`), so a CTE's name is never taken for a table. A spec that
reads another spec's table depends on it; `depends_on` adds what the SQL cannot show (a view over
another spec's table). A cycle is a ConfigError naming the tables in it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

from tasks.elt.specs import TableSpec
from tasks.errors import ConfigError

_BIND = re.compile(r"%\((\w+)\)s")


@lru_cache(maxsize=256)
def tables_read(select: str) -> frozenset[str]:
    """The `schema.table` names (lower case) a SELECT reads; bind parameters parse as a date literal.
    sqlglot is imported here, when a graph is built: `import tasks` (every command's start) does not pay for it."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.optimizer.scope import traverse_scope

    text = _BIND.sub("'1970-01-01'", select).replace("%%", "%")
    try:
        ast = sqlglot.parse_one(text, read="snowflake")
    except SqlglotError as exc:
        raise ConfigError(f"cannot parse the SELECT to find the tables it reads: {exc}") from exc
    found = set()
    for scope in traverse_scope(ast):
        for source in scope.sources.values():
            if isinstance(source, exp.Table) and source.name:
                found.add(f"{source.db}.{source.name}".lower() if source.db else source.name.lower())
    return frozenset(found)


def dependencies(specs: Sequence[TableSpec]) -> dict[str, tuple[str, ...]]:
    """Per spec (lower-case name, in listed order) the specs' tables it reads, in listed order.

    ConfigError when a spec's SELECT cannot be parsed, a `depends_on` names no spec, or the
    dependencies form a cycle (the message names its tables)."""
    names = [s.name.lower() for s in specs]
    graph: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        name = spec.name.lower()
        try:
            reads = tables_read(spec.select_sql())
        except ConfigError as exc:
            raise ConfigError(f"{spec.name}: {exc}") from None
        unknown = [d for d in spec.depends_on if d not in names]
        if unknown:
            raise ConfigError(f"{spec.name}: depends_on names tables no spec builds: {unknown}")
        wanted = reads | set(spec.depends_on)
        if name in wanted:
            raise ConfigError(f"table graph has a cycle: {spec.name} -> {spec.name}")
        graph[name] = tuple(n for n in names if n in wanted)
    cycle = find_cycle(graph)
    if cycle:
        raise ConfigError(f"table graph has a cycle: {' -> '.join(cycle)}")
    return graph


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """One cycle of `graph` as [a, b, ..., a], or [] when it has none (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph:
        if state.get(root):
            continue
        path: list[str] = [root]
        stack = [iter(graph.get(root, ()))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(graph.get(nxt, ())))
    return []


def failed_upstream(graph: Mapping[str, Sequence[str]], table: str, failed: set[str]) -> str | None:
    """The first table in `failed` that `table` reads, directly or through others; None when none."""
    seen: set[str] = set()
    todo = list(graph.get(table.lower(), ()))
    while todo:
        dep = todo.pop(0)
        if dep in failed:
            return dep
        if dep not in seen:
            seen.add(dep)
            todo.extend(graph.get(dep, ()))
    return None
