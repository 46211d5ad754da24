"""The campaign's state backend: SQLite files under var/ (one host) or one Postgres database (any host).

`[state] backend = sqlite` (the default) keeps the send ledgers, run locks and rate-limit
buckets in files under var/, as one host needs and with no server to run. `postgres` puts every
piece of campaign state in the database named by the environment variable TASKS_STATE_DSN
(never a file in the repo), so a worker on any host sees what every other did: ledger rows,
advisory locks, token buckets and task completion markers.

Sections read: [state].
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tasks import config
from tasks.errors import ConfigError
from tasks.state.db import Database, PostgresDatabase, SqliteDatabase

DSN_ENV = "TASKS_STATE_DSN"


@dataclass(frozen=True)
class StateSettings:
    backend: str = "sqlite"
    pool_size: int = 4

    @property
    def shared(self) -> bool:
        """True when the state is in Postgres, visible to every host."""
        return self.backend == "postgres"


def settings() -> StateSettings:
    """The [state] section as plain values."""
    return config.settings(StateSettings, config.StateConfig())


def dsn() -> str:
    """The Postgres DSN from TASKS_STATE_DSN; a ConfigError naming the variable when it is unset."""
    value = os.environ.get(DSN_ENV, "").strip()
    if not value:
        raise ConfigError(f"[state] backend = postgres needs the environment variable {DSN_ENV} "
                          "(postgresql://user@host:port/db; `python -m tasks state start` prints one for development)")
    return value


def database(sqlite_path: str | os.PathLike[str]) -> Database:
    """The database for one piece of state: the SQLite file `sqlite_path`, or the shared Postgres one."""
    state = settings()
    if state.shared:
        return PostgresDatabase(dsn(), state.pool_size)
    return SqliteDatabase(Path(sqlite_path))
