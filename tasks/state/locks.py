"""Exclusive locks of the state backend chosen from [state]: a flock file under `lock_dir` (SQLite backend, this
host) or a Postgres advisory lock (every host sharing the database); see tasks/state/exclusive.py for how
each dies with its holder. A Database takes its own kind (Database.try_lock).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from tasks import state
from tasks.state.exclusive import Held, advisory, flock, host_lock, lock_key

__all__ = ["Held", "advisory", "first_free", "flock", "host_lock", "lock_key", "try_lock"]


@contextlib.contextmanager
def try_lock(name: str, lock_dir: str | os.PathLike[str]) -> Iterator[Held]:
    """Try to take the lock `name` without waiting; yields a true Held while held, a false one when another
    process has it.

    With the SQLite backend the lock is `<lock_dir>/<name>.lock` (this host only); with Postgres it
    is an advisory lock every host sharing the database sees.
    """
    with state.backend().try_lock(name, lock_dir) as held:
        yield held


@contextlib.contextmanager
def first_free(names: list[str], lock_dir: str | os.PathLike[str]) -> Iterator[tuple[int, Held] | None]:
    """Hold the first free lock of `names`; yields (its index, the lock), or None when all are taken (run slots)."""
    for number, name in enumerate(names):
        with try_lock(name, lock_dir) as held:
            if held:
                yield number, held
                return
    yield None
