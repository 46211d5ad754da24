"""One client for the warehouse: connect (embedded or Snowflake), run named SQL, wrap errors.

Reads [warehouse]. `backend = embedded` reaches the local fakesnow server through the real
Snowflake connector (starting the server if none runs); `backend = snowflake` connects with
Snowflake's own conventions: `connection_name` (default $SNOWFLAKE_CONN) from
`~/.snowflake/connections.toml`, where key-pair auth (`authenticator = "SNOWFLAKE_JWT"`,
`private_key_file`) and everything else the connector supports is configured. No secret
passes through this module: the connector reads them from its own file or the environment.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tasks import config
from tasks.errors import ConfigError, ConnectionLostError, WarehouseError
from tasks.warehouse import embedded
from tasks.warehouse.dialect import Dialect, dialect_for
from tasks.warehouse.errors import translate
from tasks.warehouse.sql import qualified, render

log = logging.getLogger(__name__)


def _errors() -> type[Exception]:
    # Imported on first use: the connector costs about a second of import time, which a
    # campaign-only process (or `luigi --module tasks` checking a finished day) need not pay.
    from snowflake.connector.errors import Error

    return Error


class WarehouseClient:
    """A connection plus the few operations the tasks need; every failure is a WarehouseError."""

    def __init__(self, conn: Any, dialect: Dialect):
        self.conn = conn
        self.dialect = dialect  # what differs between backends, chosen once here
        self._ensured: set[tuple[str, tuple]] = set()

    def execute(self, sql: str, params: Mapping[str, Any] | None = None, *, name: str = "sql") -> list[tuple]:
        """Run one statement with bind parameters and return its rows (empty for DDL)."""
        cur = self.conn.cursor()
        started = time.monotonic()
        try:
            cur.execute(sql, dict(params) if params else None)
            rows = cur.fetchall() if cur.description else []
        except _errors() as exc:
            raise translate(exc, sql_name=name, query_id=cur.sfqid) from exc
        finally:
            log.debug("%s took %.3fs (query id %s)", name, time.monotonic() - started, cur.sfqid)
            cur.close()
        return rows

    def run(self, name: str, params: Mapping[str, Any] | None = None, **identifiers: str) -> list[tuple]:
        """Run the packaged statement `name` (tasks/warehouse/sql/<name>.sql)."""
        return self.execute(render(name, **identifiers), params, name=name)

    def ensure(self, name: str, **identifiers: str) -> None:
        """Run the idempotent DDL `name` (CREATE ... IF NOT EXISTS) once per connection."""
        key = (name, tuple(sorted(identifiers.items())))
        if key not in self._ensured:
            self.run(name, **identifiers)
            self._ensured.add(key)

    def columns(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Column names and rows of a query (the `sql` command's output)."""
        cur = self.conn.cursor()
        try:
            cur.execute(sql, dict(params) if params else None)
            names = [d[0] for d in cur.description] if cur.description else []
            rows = cur.fetchall() if cur.description else []
        except _errors() as exc:
            raise translate(exc, sql_name="sql", query_id=cur.sfqid) from exc
        finally:
            cur.close()
        return names, rows

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT, rolled back if the block raises."""
        self.execute("BEGIN", name="begin")
        try:
            yield
        except BaseException:
            with contextlib.suppress(WarehouseError):
                self.execute("ROLLBACK", name="rollback")
            raise
        self.execute("COMMIT", name="commit")

    def close(self) -> None:
        with contextlib.suppress(_errors()):
            self.conn.close()


def embedded_dir() -> Path:
    """The folder of the embedded server's files ([warehouse] embedded_dir or <var_dir>/warehouse)."""
    cfg = config.warehouse()
    return config.resolve_path(cfg.embedded_dir) if cfg.embedded_dir else config.var_dir() / "warehouse"


def connect_params() -> dict[str, Any]:
    """Keyword arguments for snowflake.connector.connect for the configured backend."""
    cfg = config.warehouse()
    common: dict[str, Any] = {
        "login_timeout": cfg.login_timeout,
        "session_parameters": {"QUERY_TAG": "mau-campaign-tasks"},
    }
    if cfg.backend == "embedded":
        state = embedded.ensure_running(
            embedded_dir(), cfg.embedded_port, cfg.embedded_start_timeout, cfg.embedded_reap_after
        )
        return {
            **common,
            "network_timeout": cfg.embedded_network_timeout,
            "user": "embedded",
            "password": "embedded",  # fakesnow accepts any credentials; this is not a secret
            "account": "embedded",
            "host": "127.0.0.1",
            "port": state.port,
            "protocol": "http",
            "database": cfg.database,
            "schema": "PUBLIC",
            "session_parameters": {**common["session_parameters"], "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        }
    name = cfg.connection_name or os.environ.get("SNOWFLAKE_CONN", "")
    if not name:
        raise ConfigError(
            "backend = snowflake needs a connection: set [warehouse] connection_name or SNOWFLAKE_CONN "
            "to an entry of ~/.snowflake/connections.toml"
        )
    params = {**common, "connection_name": name, "network_timeout": cfg.network_timeout}
    if cfg.connections_file:
        params["connections_file_path"] = config.resolve_path(cfg.connections_file)
    return params


def connect(params: dict[str, Any] | None = None) -> WarehouseClient:
    """A new client for the configured warehouse (starts the embedded server if needed)."""
    import snowflake.connector

    cfg = config.warehouse()
    params = params or connect_params()
    try:
        conn = snowflake.connector.connect(**params)
    except _errors() as exc:
        raise translate(exc, prefix=f"cannot connect to the {cfg.backend} warehouse: ") from exc
    return WarehouseClient(conn, dialect_for(cfg.backend, qualified(cfg.marker_table)))


# One open client per process and connection settings: Luigi asks complete() of every task
# and each task opens a session, and a login costs tens of ms (embedded) to seconds (cloud).
# Keyed by pid so that a forked worker never shares its parent's socket.
_clients: dict[tuple[int, str], WarehouseClient] = {}


@contextlib.contextmanager
def session() -> Iterator[WarehouseClient]:
    """A connected client, reused within this process while the settings stay the same."""
    params = connect_params()
    key = (os.getpid(), repr(sorted((k, repr(v)) for k, v in params.items())))
    client = _clients.get(key)
    if client is None or client.conn.is_closed():
        client = _clients[key] = connect(params)
    try:
        yield client
    except ConnectionLostError:
        _clients.pop(key, None)
        client.close()
        raise


@atexit.register
def _close_clients() -> None:
    for key, client in list(_clients.items()):
        if key[0] == os.getpid():
            client.close()
    _clients.clear()
