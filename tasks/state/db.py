"""One small database interface over SQLite and Postgres, for the campaign's state.

Statements live in `.sql` files written once with named parameters (`:name`); a dialect may
override a statement with `<name>.<dialect>.sql` where the two engines differ (arrays on
Postgres, `json_each` on SQLite). A list or tuple bound to a parameter is passed as a JSON
array to SQLite (read it with `json_each(:ids)`) and as an array to Postgres (`= ANY(:ids)`).

Postgres connections come from one psycopg_pool per process and DSN, re-made after a fork
(Luigi forks a process per task when it runs several workers); a pooled connection is never
shared across processes. Where the engines differ in more than a statement (bulk writes, bind
styles, per-key locks, the catalog) each has its own `Tx` class: nobody asks which engine it is.
Reads no luigi.cfg section: the caller passes the path or DSN.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

from tasks.errors import ConfigError, StateBackendError
from tasks.files import private_file
from tasks.state import exclusive
from tasks.state.exclusive import Held

Params = Mapping[str, Any]

SCHEMA_LOCK = 0x7461736B73  # the advisory lock every schema change of this package takes first ("tasks")
KEY_LOCKS = 1668247408  # the namespace of Tx.lock_keys' transaction locks on Postgres
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_CREATE_IF_MISSING = re.compile(r"^CREATE (?:TEMPORARY )?(?:TABLE|INDEX) IF NOT EXISTS (\w+)", re.IGNORECASE)


@functools.cache
def read_sql(folder: str, name: str, dialect: str) -> str:
    """The statement `name` of `folder` for `dialect`: `<name>.<dialect>.sql` if it exists, else `<name>.sql`."""
    base = Path(folder)
    for candidate in (base / f"{name}.{dialect}.sql", base / f"{name}.sql"):
        if candidate.is_file():  # whole-line `--` comments dropped: they may name parameters
            text = candidate.read_text(encoding="utf-8")
            return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    raise ConfigError(f"missing SQL file {base / (name + '.sql')}")


@functools.cache
def to_pyformat(sql: str) -> str:
    """`:name` -> `%(name)s` (psycopg), `%` -> `%%`; `::type` casts are left alone."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


class Tx:
    """One open transaction: run statements, read rows. Each backend's Tx knows its engine's ways (parameter
    style, bulk writes, locks); the statements it runs are the caller's."""

    def __init__(self, cursor: Any) -> None:
        self._cur = cursor

    def _bind(self, params: Params) -> Params:
        return params

    def _sql(self, sql: str) -> str:
        return sql

    def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement; returns its row count."""
        self._cur.execute(self._sql(sql), self._bind(params or {}))
        return self._cur.rowcount

    def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement per row; returns the rows changed over all of them."""
        self._cur.executemany(self._sql(sql), [self._bind(r) for r in rows])
        return self._cur.rowcount

    def rows(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        self._cur.execute(self._sql(sql), self._bind(params or {}))
        return list(self._cur.fetchall())

    def column_names(self) -> list[str]:
        """The column names of the last query."""
        return [d[0] for d in self._cur.description]

    def script(self, sql: str) -> None:
        """Run several `;`-separated statements without parameters (schema files; `--` comment lines dropped)."""
        for statement in _statements(sql):
            self._cur.execute(statement)

    def insert_each(self, sql: str, params: Params, column: str, values: Iterable[Any]) -> int:
        """Run the INSERT `sql` for each of `values` as the parameter `column` (the others from `params`), in
        bulk; returns the rows inserted. Its Postgres variant reads the values from the temporary table
        `bulk_values (value)` of this transaction instead of the parameter."""
        raise NotImplementedError

    def execute_each(self, sql: str, params: Params, columns: Mapping[str, Sequence[Any]]) -> int:
        """Run `sql` once per row of the parallel `columns` (each a parameter, the others from `params`);
        returns the rows changed. Its Postgres variant takes each column as an array, in one statement."""
        raise NotImplementedError

    def lock_keys(self, names: Iterable[str]) -> None:
        """Hold an exclusive lock on each name until the transaction ends, taken in one order (no deadlock)."""
        raise NotImplementedError

    def insert_rows(self, sql: str, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert a batch of `rows` (tuples in `columns` order) in bulk; returns the rows inserted. SQLite runs the
        INSERT `sql` once per row with the row as its positional `?` parameters (one prepared statement: its
        fastest bulk insert); Postgres COPYs the rows into this transaction's staging table `table` and runs
        `sql` once, reading them from there."""
        raise NotImplementedError

    def table_columns(self, table: str) -> list[str]:
        """The columns of `table` in this database ([] when there is no such table)."""
        raise NotImplementedError


class SqliteTx(Tx):
    """A SQLite transaction: lists bound as JSON arrays (read with `json_each(:ids)`)."""

    def _bind(self, params: Params) -> Params:
        return {k: json.dumps(list(v)) if isinstance(v, (list, tuple)) else v for k, v in params.items()}

    def insert_each(self, sql: str, params: Params, column: str, values: Iterable[Any]) -> int:
        # positional tuples, not a dict per row (a million rows); ON CONFLICT's skips count 0 in the row count
        names = _NAMED.findall(sql)
        fixed = [params.get(name) for name in names]
        slots = [i for i, name in enumerate(names) if name == column]

        def row(value: Any) -> tuple[Any, ...]:
            filled = list(fixed)
            for i in slots:
                filled[i] = value
            return tuple(filled)

        self._cur.executemany(_NAMED.sub("?", sql), (row(v) for v in values))
        return self._cur.rowcount

    def execute_each(self, sql: str, params: Params, columns: Mapping[str, Sequence[Any]]) -> int:
        names = list(columns)
        rows = ({**params, **dict(zip(names, values, strict=True))} for values in zip(*columns.values(), strict=True))
        return self.executemany(sql, rows)

    def lock_keys(self, names: Iterable[str]) -> None:
        """Nothing to take: BEGIN IMMEDIATE already holds the file's only write lock for the transaction."""

    def insert_rows(self, sql: str, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        self._cur.executemany(sql, rows)
        return self._cur.rowcount

    def table_columns(self, table: str) -> list[str]:
        return [row[1] for row in self.rows(f"PRAGMA table_info({_identifier(table)})")]


class PostgresTx(Tx):
    """A Postgres transaction: `:name` parameters sent as `%(name)s`, tuples bound as arrays (`= ANY(:ids)`)."""

    def _bind(self, params: Params) -> Params:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}

    def _sql(self, sql: str) -> str:
        return to_pyformat(sql)

    def script(self, sql: str) -> None:
        statements = _statements(sql)
        # CREATE INDEX IF NOT EXISTS takes a SHARE lock on its table even when the index exists, so it would
        # wait for every open write and every claim would queue behind it: a schema already there is left be
        names = [m.group(1) for m in map(_CREATE_IF_MISSING.match, statements) if m]
        if names and len(names) == len(statements):
            self._cur.execute("SELECT bool_and(to_regclass(n) IS NOT NULL) FROM unnest(%s::text[]) AS n", (names,))
            if self._cur.fetchone()[0]:
                return
        # concurrent CREATE ... IF NOT EXISTS race in the catalog: one at a time
        self._cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        for statement in statements:
            self._cur.execute(statement)

    def insert_each(self, sql: str, params: Params, column: str, values: Iterable[Any]) -> int:
        self._cur.execute("CREATE TEMPORARY TABLE IF NOT EXISTS bulk_values (value TEXT) ON COMMIT DELETE ROWS")
        with self._cur.copy("COPY bulk_values (value) FROM STDIN") as copy:
            for value in values:
                copy.write_row((value,))
        return self.execute(sql, params)

    def execute_each(self, sql: str, params: Params, columns: Mapping[str, Sequence[Any]]) -> int:
        return self.execute(sql, {**params, **{name: list(values) for name, values in columns.items()}})

    def lock_keys(self, names: Iterable[str]) -> None:
        """Transaction advisory locks (namespace KEY_LOCKS, a 32-bit hash of each name), in the hashes' order."""
        self._cur.execute("SELECT pg_advisory_xact_lock(%s, k) FROM (SELECT DISTINCT hashtext(n) AS k "
                          "FROM unnest(%s::text[]) AS n ORDER BY k) AS keys", (KEY_LOCKS, list(names)))

    def insert_rows(self, sql: str, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        names = ", ".join(_identifier(c) for c in columns)
        with self._cur.copy(f"COPY {_identifier(table)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return self.execute(sql)

    def table_columns(self, table: str) -> list[str]:
        return [row[0] for row in self.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = :table ORDER BY ordinal_position", {"table": table})]


def _statements(sql: str) -> list[str]:
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]


def _identifier(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise ValueError(f"not an identifier: {name!r}")
    return name


class Database:
    """A SQLite file or a Postgres database; `transaction()` yields its backend's `Tx`.

    `dialect` names the engine for one thing only: which variant of a statement file to read (`sql`).
    """

    dialect = ""
    keyed_table = ""  # the table option that stores rows in the primary key's b-tree, where the engine has one

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:  # pragma: no cover - every backend overrides it
        raise NotImplementedError
        yield

    def sql(self, folder: str | os.PathLike[str], name: str) -> str:
        """The statement `name` of `folder` for this engine (read_sql)."""
        return read_sql(str(folder), name, self.dialect)

    def try_lock(self, name: str) -> contextlib.AbstractContextManager[Held]:
        """Try to take the exclusive lock `name` without waiting, for as long as the context is open (see
        tasks/state/locks.py): beside a SQLite file a flock every process of this host sees; on Postgres an
        advisory lock every host sees."""
        raise NotImplementedError

    def close(self) -> None:
        """Release this object's connections (a pool shared by the process stays open)."""


class SqliteDatabase(Database):
    """A SQLite file (created 0600) in WAL mode; one connection behind a lock, BEGIN IMMEDIATE per transaction."""

    dialect = "sqlite"
    keyed_table = "WITHOUT ROWID"

    def __init__(self, path: str | os.PathLike[str], busy_timeout_ms: int = 30_000) -> None:
        self.path = Path(path)
        private_file(self.path)  # SQLite gives its -wal and -shm files the same mode
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise ConfigError(f"{self.path}: SQLite refused WAL mode (got {mode})")
            self._conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            self._conn.close()
            raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            cursor = self._conn.cursor()
            try:
                yield SqliteTx(cursor)
                self._conn.execute("COMMIT")
            except BaseException:
                # a COMMIT that failed (disk full, an I/O error) leaves the transaction open holding the write
                # lock: roll it back too, or every later transaction here fails and other processes wait
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            finally:  # inside the lock: a cursor freed later resets its cached statement under another thread's use
                cursor.close()

    def try_lock(self, name: str) -> contextlib.AbstractContextManager[Held]:
        return exclusive.flock(self.path.parent, name)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def as_database(where: str | os.PathLike[str] | Database) -> Database:
    """`where` itself when it is a Database, else the SQLite file at that path."""
    return where if isinstance(where, Database) else SqliteDatabase(Path(where))


class SqlStore:
    """A store of tables in one Database, its statements in the folder `sql_dir` (`schema.sql` made when it
    opens, idempotently); `close()` or leaving a `with` closes the database. Subclasses add what the store does."""

    sql_dir: ClassVar[str | os.PathLike[str]] = ""

    def __init__(self, where: str | os.PathLike[str] | Database) -> None:
        self.db = as_database(where)
        with self.db.transaction() as tx:
            tx.script(self._sql("schema"))

    def _sql(self, name: str) -> str:
        return self.db.sql(self.sql_dir, name)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PostgresDatabase(Database):
    """A Postgres database reached through this process's pool for `dsn`."""

    dialect = "postgres"
    keyed_table = ""  # a heap with its primary key's index

    def __init__(self, dsn: str, pool_size: int = 4) -> None:
        self.dsn = dsn
        self.pool_size = pool_size

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        pool = postgres_pool(self.dsn, self.pool_size)
        try:
            with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield PostgresTx(cur)
        except _pg_operational_errors() as exc:
            raise StateBackendError(f"state database unreachable or failing: {type(exc).__name__}: "
                                    f"{_first_line(exc)}") from None

    def connect(self) -> Any:
        """A connection of its own (not pooled, autocommit): for session-level advisory locks held long."""
        import psycopg

        _check_dsn(self.dsn)
        try:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10, **KEEPALIVES)
        except psycopg.OperationalError as exc:
            raise StateBackendError(f"state database unreachable: {_first_line(exc)}") from None

    def try_lock(self, name: str) -> contextlib.AbstractContextManager[Held]:
        return exclusive.advisory(self.connect, name)


# A dead peer (a host that lost power) releases its advisory locks once TCP notices: ~40 s.
KEEPALIVES: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 6}

_POOLS: dict[tuple[int, str], Any] = {}
_POOLS_LOCK = threading.Lock()


def postgres_pool(dsn: str, size: int = 4) -> Any:
    """This process's psycopg_pool.ConnectionPool for `dsn` (a new one after a fork)."""
    key = (os.getpid(), dsn)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            from psycopg_pool import ConnectionPool

            _check_dsn(dsn)  # before the pool: its workers would log libpq's message for 15 s of retries

            pool = ConnectionPool(dsn, min_size=1, max_size=max(1, size), kwargs=dict(KEEPALIVES), open=False,
                                  name="tasks-state")
            try:
                pool.open(wait=True, timeout=15)
            except Exception as exc:  # noqa: BLE001 - psycopg_pool raises PoolTimeout on an unreachable server
                pool.close()
                raise StateBackendError(f"state database unreachable: {type(exc).__name__}: {_first_line(exc)}") \
                    from None
            _POOLS[key] = pool
        return pool


def close_pools() -> None:
    """Close this process's pools (at exit; tests)."""
    with _POOLS_LOCK:
        for (pid, _), pool in list(_POOLS.items()):
            if pid == os.getpid():
                pool.close()
        _POOLS.clear()


def _pg_operational_errors() -> tuple[type[BaseException], ...]:
    import psycopg

    return (psycopg.OperationalError,)


def _check_dsn(dsn: str) -> None:
    """StateBackendError when libpq cannot parse `dsn`, without its message: libpq repeats a connection string
    it cannot parse whole, password included."""
    import psycopg

    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise StateBackendError("state database unreachable: TASKS_STATE_DSN is not a valid libpq connection string "
                                "or URI (postgresql://user:password@host/db)") from None


def _first_line(exc: BaseException) -> str:
    """The first line of a driver message: never the DSN (psycopg does not echo passwords; keep it short)."""
    return (str(exc).strip().splitlines() or [""])[0][:300]
