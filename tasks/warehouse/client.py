"""One client for the warehouse: connect (embedded or Snowflake), run named SQL, wrap errors.

Reads [warehouse]. `backend = embedded` reaches the local fakesnow server through the real
Snowflake connector (starting the server if none runs); `backend = snowflake` connects with
Snowflake's own conventions: `connection_name` (default $SNOWFLAKE_CONN) from
`~/.snowflake/connections.toml`, where key-pair auth (`authenticator = "SNOWFLAKE_JWT"`,
`private_key_file`) and everything else the connector supports is configured. No secret
passes through this module: the connector reads them from its own file or the environment.

Every session runs with AUTOCOMMIT on (an account or user default of FALSE would otherwise leave
the marker MERGE uncommitted) and a JSON QUERY_TAG (`{"project": ...}` at login; a task adds
task, table, date and build id with `client.query_tag(...)`), so a DBA finds our queries in
QUERY_HISTORY.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tasks import config
from tasks.errors import ConfigError, ConnectionLostError, NotAuthorizedError, ObjectMissingError, WarehouseError
from tasks.warehouse import embedded
from tasks.warehouse.dialect import Dialect, dialect_for
from tasks.warehouse.errors import translate
from tasks.warehouse.sql import render

log = logging.getLogger(__name__)

PROJECT = "mau-campaign-tasks"  # the `project` of every QUERY_TAG


def _errors() -> type[Exception]:
    # Imported on first use: the connector costs about a second of import time, which a
    # campaign-only process (or `luigi --module tasks` checking a finished day) need not pay.
    from snowflake.connector.errors import Error

    return Error


class WarehouseClient:
    """A connection plus the few operations the tasks need; every failure is a WarehouseError."""

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect  # what differs between backends, chosen once here
        self._ensured: set[tuple[str, tuple]] = set()
        # the session's QUERY_TAG: set at login; a different wanted tag is sent before the next statement
        self._tag_sent = self._tag_wanted = query_tag_json({})

    @contextlib.contextmanager
    def query_tag(self, **fields: str) -> Iterator[None]:
        """Statements run inside the block carry QUERY_TAG {"project", **fields} (sent once, when the
        first statement needs it); the previous tag is wanted again afterwards."""
        previous = self._tag_wanted
        self._tag_wanted = query_tag_json(fields)
        try:
            yield
        finally:
            self._tag_wanted = previous

    def execute(self, sql: str, params: Mapping[str, Any] | None = None, *, name: str = "sql") -> list[tuple]:
        """Run one statement with bind parameters and return its rows (empty for DDL)."""
        self._send_tag()
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

    def _send_tag(self) -> None:
        if self._tag_wanted != self._tag_sent:
            self._tag_sent = self._tag_wanted  # first: the tag statement itself runs through execute()
            self.dialect.set_query_tag(self, self._tag_wanted)

    def describe(self, name: str, params: Mapping[str, Any] | None = None, **identifiers: str) -> list[tuple[str, Any]]:
        """The result columns (name, type code) of the packaged query `name`, its rows discarded."""
        self._send_tag()
        cur = self.conn.cursor()
        try:
            cur.execute(render(name, **identifiers), dict(params) if params else None)
            columns = [(d[0], d[1]) for d in cur.description] if cur.description else []
            cur.fetchall()
        except _errors() as exc:
            raise translate(exc, sql_name=name, query_id=cur.sfqid) from exc
        finally:
            cur.close()
        return columns

    def ensure(self, name: str, **identifiers: str) -> None:
        """Run the idempotent DDL `name` (CREATE ... IF NOT EXISTS) once per connection."""
        key = (name, tuple(sorted(identifiers.items())))
        if key not in self._ensured:
            self.run(name, None, **identifiers)
            self._ensured.add(key)

    def create_if_absent(self, name: str, **identifiers: str) -> bool:
        """Run `CREATE ... IF NOT EXISTS` statement `name`; True if it created the object, False if
        the warehouse answered that it already existed (Snowflake: "X already exists, statement
        succeeded.", also for an object this role cannot see)."""
        rows = self.run(name, None, **identifiers)
        self._ensured.add((name, tuple(sorted(identifiers.items()))))
        return not any("already exists" in str(row[0]).lower() for row in rows if row)

    def lookup_own(
        self, name: str, params: Mapping[str, Any], *, table: str, create: str, **identifiers: str
    ) -> list[tuple]:
        """Run the lookup `name` on `table`, a table this package creates itself (`create` is its
        CREATE TABLE IF NOT EXISTS statement, taking `identifiers` too).

        Snowflake answers 2003 "does not exist or not authorized" both when the table is missing
        and when this role lost its privileges on it. A missing table reads as no rows (it is
        created, empty); a table that exists but this role cannot read raises NotAuthorizedError
        naming the privilege, so a lost grant is never mistaken for "not done yet".
        """
        try:
            return self.run(name, params, **identifiers)
        except ObjectMissingError as missing:
            schema = table.split(".")[0]
            self.ensure("create_schema", schema=schema)
            if self.create_if_absent(create, **identifiers):
                return []
            try:  # another process may have created it between our lookup and our CREATE
                return self.run(name, params, **identifiers)
            except ObjectMissingError:
                role = self.current_role()
                raise NotAuthorizedError(
                    f"{table} exists but role {role} cannot read it (Snowflake said: {missing}); "
                    f"needs SELECT, INSERT and UPDATE on {table} and USAGE on schema {schema}",
                    query_id=missing.query_id,
                    sql_name=name,
                ) from missing

    def current_role(self) -> str:
        """The session's role (for error messages that name a missing privilege)."""
        try:
            (role,), = self.run("current_role")
        except WarehouseError:
            return "(unknown role)"
        return str(role)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """The statements of the block commit together, or none of them (ROLLBACK on any error).

        Only DML belongs inside: on Snowflake every DDL statement commits by itself."""
        self.run("tx_begin")
        try:
            yield
        except BaseException:
            with contextlib.suppress(WarehouseError):
                self.run("tx_rollback")
            raise
        self.run("tx_commit")

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

    def close(self) -> None:
        with contextlib.suppress(_errors()):
            self.conn.close()


def embedded_dir() -> Path:
    """The folder of the embedded server's files ([warehouse] embedded_dir or <var_dir>/warehouse)."""
    cfg = config.WarehouseConfig()
    return config.resolve_path(cfg.embedded_dir) if cfg.embedded_dir else config.var_dir() / "warehouse"


def connect_params() -> dict[str, Any]:
    """Keyword arguments for snowflake.connector.connect for the configured backend."""
    cfg = config.WarehouseConfig()
    common: dict[str, Any] = {
        "login_timeout": cfg.login_timeout,
        "autocommit": True,  # sent as the AUTOCOMMIT session parameter at login, whatever the account default
        "session_parameters": {"QUERY_TAG": query_tag_json({})},
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

    cfg = config.WarehouseConfig()
    params = params or connect_params()
    try:
        conn = snowflake.connector.connect(**params)
    except _errors() as exc:
        raise translate(exc, prefix=f"cannot connect to the {cfg.backend} warehouse: ") from exc
    return WarehouseClient(conn, dialect_for(cfg.backend))


def query_tag_json(fields: Mapping[str, str]) -> str:
    """The QUERY_TAG text: compact JSON, `project` first (Snowflake allows 2000 characters)."""
    tag = json.dumps({"project": PROJECT, **fields}, separators=(",", ":"))
    if len(tag) > 2000:
        raise ConfigError(f"QUERY_TAG longer than Snowflake's 2000 characters: {tag[:80]}...")
    return tag


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
