"""A real Postgres for the shared-state tests: one server per test session, a fresh database per test.

The server is the machine's PostgreSQL (`make test` installs Debian's package when it is missing),
started by tasks.state.server in a temporary folder (its Unix socket only, no TCP port), and removed at the end.
`postgres_state` switches the test's luigi config to `[state] backend = postgres` and sets
TASKS_STATE_DSN, so in-process tasks and subprocesses use the database.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tasks.state.db import Database, PostgresDatabase, SqliteDatabase, close_pools
from tasks.state.server import LocalServer, scratch_server, wait_ready


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalServer]:
    server = scratch_server(free_port())
    server.start()
    wait_ready(server.dsn)
    yield server
    close_pools()
    server.remove()


@pytest.fixture
def pg_dsn(pg_server: LocalServer) -> Iterator[str]:
    """The DSN of a new, empty database on the session's server (dropped after the test)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.dsn.rsplit("/", 1)[0] + f"/{name}"
    close_pools()
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_state(pg_dsn: str, monkeypatch: pytest.MonkeyPatch, luigi_cfg) -> str:
    """`[state] backend = postgres` on a fresh database, for this test and its subprocesses."""
    monkeypatch.setenv("TASKS_STATE_DSN", pg_dsn)
    luigi_cfg.set("state", "backend", "postgres")
    return pg_dsn


@pytest.fixture(params=["sqlite", "postgres"])
def state_db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """A Database of each backend: a SQLite file of this test, or a fresh database on the session's Postgres."""
    if request.param == "sqlite":
        return SqliteDatabase(tmp_path / "state.sqlite3")
    return PostgresDatabase(request.getfixturevalue("pg_dsn"))
