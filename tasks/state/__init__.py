"""The campaign's state backend: SQLite files under var/ (one host) or one Postgres database (any host).

`[state] backend = sqlite` (the default) keeps the send ledgers, run locks and rate-limit
buckets in files under var/, as one host needs and with no server to run. `postgres` puts every
piece of campaign state in the database named by the environment variable TASKS_STATE_DSN
(never a file in the repo), so a worker on any host sees what every other did: ledger rows,
advisory locks, token buckets and task completion markers.

`backend()` is the one object that knows which (tasks/state/backend.py); the rest of the package
asks it questions and never which backend it is. Sections read: [state].
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from tasks import config
from tasks.state.backend import DSN_ENV, StateBackend, backend_for, dsn
from tasks.state.db import Database

__all__ = ["DSN_ENV", "StateBackend", "StateSettings", "backend", "database", "dsn", "settings"]


@dataclass(frozen=True)
class StateSettings:
    backend: str = "sqlite"
    pool_size: int = 4


def settings() -> StateSettings:
    """The [state] section as plain values."""
    return config.settings(StateSettings, config.StateConfig())


def backend() -> StateBackend:
    """The state backend of [state]: one object per configuration, chosen here and nowhere else."""
    chosen = settings()
    return _backend(chosen.backend, chosen.pool_size)


@functools.cache
def _backend(name: str, pool_size: int) -> StateBackend:
    return backend_for(name, pool_size)


def database(sqlite_path: str | os.PathLike[str]) -> Database:
    """The database for one piece of state: the SQLite file `sqlite_path`, or the shared Postgres one."""
    return backend().database(sqlite_path)
