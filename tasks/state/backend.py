"""The state backend: one object, chosen once from [state], that answers every question whose answer
depends on where the campaign's state lives. Nothing outside tasks/state/ asks which one it is.

- `SqliteBackend` (`[state] backend = sqlite`, the default): SQLite files under var/, flock
  locks, token buckets in this process (or a SQLite file when the processes of one host share
  one), results as JSON files: one host, no server.
- `PostgresBackend` (`postgres`): one database named by TASKS_STATE_DSN (an environment
  variable, never a file in the repo) for every piece of state, advisory locks, token buckets
  and result marker rows every host sees.

The questions: which database holds a piece of state (`database`), whether it exists yet
(`existing_database`: a preview or a report never creates a file), which lock (`try_lock`),
which token bucket (`bucket_store`), where a task's result goes (`result_target`), and what is
wrong with the configuration (`problems`). Which SQL variant a statement uses is the database's
own business (tasks/state/db.py). Sections read: [state] (by tasks.state.backend()).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.errors import ConfigError, StateBackendError
from tasks.state import exclusive
from tasks.state.db import Database, PostgresDatabase, SqliteDatabase
from tasks.state.markers import MarkerTarget
from tasks.state.targets import FileResult, MarkedResult, ResultTarget

if TYPE_CHECKING:  # pyrate_limiter is loaded where a bucket is made, not by `import tasks` or `status`
    from tasks.state.buckets import SharedStore

DSN_ENV = "TASKS_STATE_DSN"

Problem = tuple[str, str | None, str]  # (section, key or None, what), as check-config reports them
LockContext = contextlib.AbstractContextManager[exclusive.Held]


def dsn() -> str:
    """The Postgres DSN from TASKS_STATE_DSN; a ConfigError naming the variable when it is unset."""
    value = os.environ.get(DSN_ENV, "").strip()
    if not value:
        raise ConfigError(f"[state] backend = postgres needs the environment variable {DSN_ENV} "
                          "(postgresql://user@host:port/db; `python -m tasks state start` prints one for development)")
    return value


class StateBackend:
    """Where the campaign's state lives. `sqlite_path` names a piece of state as a SQLite file under var/
    (a channel's ledger, the suppression store); a backend with one database for everything ignores it."""

    name = ""

    def database(self, sqlite_path: str | os.PathLike[str]) -> Database:
        """The database holding this piece of state (created when missing)."""
        raise NotImplementedError

    def existing_database(self, sqlite_path: str | os.PathLike[str]) -> Database | None:
        """The database holding this piece of state when it exists already, else None (creates nothing)."""
        raise NotImplementedError

    def try_lock(self, name: str, lock_dir: str | os.PathLike[str]) -> LockContext:
        """The exclusive lock `name`, without waiting (tasks/state/locks.py); `lock_dir` holds flock files."""
        raise NotImplementedError

    def bucket_store(self, name: str, sqlite_path: Path | None) -> SharedStore | None:
        """Where the token bucket `name` keeps its state: None for one in this process. `sqlite_path` is the file
        the processes of this host share a bucket through (None: only this process sends)."""
        raise NotImplementedError

    def result_target(self, path: str | os.PathLike[str], marker_id: str) -> ResultTarget:
        """Where a task's result document goes: the file `path`, and the completion every host must see."""
        raise NotImplementedError

    def problems(self) -> list[Problem]:
        """What keeps this backend from working (a missing variable, a database that does not answer)."""
        raise NotImplementedError


class SqliteBackend(StateBackend):
    """SQLite files under var/: one host."""

    name = "sqlite"

    def database(self, sqlite_path: str | os.PathLike[str]) -> Database:
        return SqliteDatabase(Path(sqlite_path))

    def existing_database(self, sqlite_path: str | os.PathLike[str]) -> Database | None:
        return SqliteDatabase(Path(sqlite_path)) if Path(sqlite_path).exists() else None

    def try_lock(self, name: str, lock_dir: str | os.PathLike[str]) -> LockContext:
        return exclusive.flock(lock_dir, name)

    def bucket_store(self, name: str, sqlite_path: Path | None) -> SharedStore | None:
        from tasks.state.buckets import SqliteStateStore

        return SqliteStateStore(sqlite_path, name) if sqlite_path is not None else None

    def result_target(self, path: str | os.PathLike[str], marker_id: str) -> ResultTarget:
        return FileResult(path)

    def problems(self) -> list[Problem]:
        return []


class PostgresBackend(StateBackend):
    """One Postgres database for every host (TASKS_STATE_DSN, read when first needed)."""

    name = "postgres"

    def __init__(self, pool_size: int = 4) -> None:
        self.pool_size = pool_size

    def database(self, sqlite_path: str | os.PathLike[str]) -> Database:
        return PostgresDatabase(dsn(), self.pool_size)

    def existing_database(self, sqlite_path: str | os.PathLike[str]) -> Database | None:
        return self.database(sqlite_path)  # the database is there (or fails to answer)

    def try_lock(self, name: str, lock_dir: str | os.PathLike[str]) -> LockContext:
        return PostgresDatabase(dsn()).try_lock(name)

    def bucket_store(self, name: str, sqlite_path: Path | None) -> SharedStore | None:
        from tasks.state.buckets import PostgresStateStore

        return PostgresStateStore(dsn(), name)  # every process of every host: one bucket

    def result_target(self, path: str | os.PathLike[str], marker_id: str) -> ResultTarget:
        return MarkedResult(path, MarkerTarget(self.database(path), marker_id))

    def problems(self) -> list[Problem]:
        try:
            value = dsn()
        except ConfigError as exc:
            return [("environment", None, str(exc))]
        try:
            PostgresDatabase(value).connect().close()
        except StateBackendError as exc:
            return [("state", "backend", f"backend = postgres, but the database of {DSN_ENV} does not answer: {exc}")]
        return []


def backend_for(name: str, pool_size: int = 4) -> StateBackend:
    """The backend `name` of [state] backend."""
    if name == "postgres":
        return PostgresBackend(pool_size)
    if name == "sqlite":
        return SqliteBackend()
    raise ConfigError(f"[state] backend = {name!r}; expected sqlite or postgres")
