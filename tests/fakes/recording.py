"""A recording connection: the one stand-in for Snowflake, for statement-sequence contract tests.

`RecordingConnection` looks like a snowflake.connector connection to WarehouseClient. Every
statement the Snowflake dialect sends is recorded as the server would receive it (bind
parameters interpolated the way the connector's client-side binding does it, with its own
converter) and appended to a file (flushed before it runs, so a SIGKILLed process leaves the
statements it sent). Given a `real` connection, the data behind it is real: statements run on
an embedded-warehouse connection, except the few that only Snowflake knows, which are answered
the way Snowflake answers them (without one, every statement is answered that way):

- `ALTER SESSION SET QUERY_TAG`, `GRANT`: "Statement executed successfully.", nothing runs;
- `CREATE OR REPLACE TABLE t CLONE s COPY GRANTS`: runs as `CREATE OR REPLACE TABLE t AS
  SELECT * FROM s` (what the clone holds afterwards); `CREATE TABLE s CLONE t` (an incremental
  build's start) as `CREATE TABLE s AS SELECT * FROM t`.

`install()` puts a client on it into the warehouse client's per-process cache, so the Luigi
tasks' own `session()` hands it out. Run as a module, it runs `luigi.build` on one table for
one date in this process with the recording client (for crash runs in a subprocess):

    python -m tests.fakes.recording RECORD_FILE TABLE DATE
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from tasks.warehouse import client as client_module
from tasks.warehouse.client import WarehouseClient, connect_params
from tasks.warehouse.dialect import SnowflakeDialect

_ANSWERED = re.compile(r"^\s*(ALTER\s+SESSION\s+SET\s+QUERY_TAG|GRANT)\b", re.IGNORECASE)
_CLONE = re.compile(r"^\s*CREATE\s+OR\s+REPLACE\s+TABLE\s+(\S+)\s+CLONE\s+(\S+)\s+COPY\s+GRANTS\s*$", re.IGNORECASE)
_CLONE_NEW = re.compile(r"^\s*CREATE\s+TABLE\s+(\S+)\s+CLONE\s+(\S+)\s*$", re.IGNORECASE)


def strip_comments(sql: str) -> str:
    """The statement without `--` comment lines, whitespace collapsed."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return " ".join(" ".join(lines).split())


def bind(sql: str, params: dict[str, Any] | None) -> str:
    """`sql` with its %(name)s parameters bound as the connector binds them client-side."""
    if not params:
        return sql
    from snowflake.connector.converter import SnowflakeConverter

    conv = SnowflakeConverter()
    return sql % {k: conv.quote(conv.escape(conv.to_snowflake(v))) for k, v in params.items()}


class RecordingCursor:
    def __init__(self, owner: RecordingConnection):
        self.owner = owner
        self.real = owner.real.cursor() if owner.real is not None else None
        self.description: Any = None
        self.sfqid: str | None = None
        self._rows: list[tuple] = []

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> RecordingCursor:
        bound = bind(sql, params)
        self.owner.record(bound)
        body = strip_comments(bound)
        answer = self.owner.answer(body)
        if isinstance(answer, Exception):
            raise answer
        if answer is not None:
            self.description, self._rows = [("answer",)], answer
            return self
        if self.real is None or _ANSWERED.match(body):
            self.description, self._rows = [("status",)], [("Statement executed successfully.",)]
            return self
        clone = _CLONE.match(body)
        if clone:
            sql, params = f"CREATE OR REPLACE TABLE {clone.group(1)} AS SELECT * FROM {clone.group(2)}", None
        clone_new = _CLONE_NEW.match(body)
        if clone_new:
            sql, params = f"CREATE TABLE {clone_new.group(1)} AS SELECT * FROM {clone_new.group(2)}", None
        try:
            self.real.execute(sql, params)
        finally:
            self.sfqid = self.real.sfqid
        self.description = self.real.description
        self._rows = self.real.fetchall() if self.real.description else []
        return self

    def fetchall(self) -> list[tuple]:
        return self._rows

    def close(self) -> None:
        if self.real is not None:
            self.real.close()


class RecordingConnection:
    """Records every statement (to `path`, one line each) and runs it on `real` (if given).

    `answers`: (regex, rows or exception) pairs, each used once, for the first statement it
    matches: Snowflake's own answers in cases the embedded warehouse cannot produce (an object
    that exists but this role cannot see)."""

    def __init__(self, real: Any, path: Path, answers: list[tuple[str, Any]] | None = None):
        self.real = real
        self.path = path
        self.answers = list(answers or [])

    def answer(self, sql: str) -> Any:
        for i, (pattern, response) in enumerate(self.answers):
            if re.search(pattern, sql):
                del self.answers[i]
                return response
        return None

    def record(self, sql: str) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(strip_comments(sql) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def cursor(self) -> RecordingCursor:
        return RecordingCursor(self)

    def is_closed(self) -> bool:
        return self.real is not None and self.real.is_closed()

    def close(self) -> None:
        if self.real is not None:
            self.real.close()


def install(path: Path) -> WarehouseClient:
    """A Snowflake-dialect client on a recording connection, handed out by `session()` in this process."""
    import snowflake.connector

    params = connect_params()
    # the key session() computes (before connecting: the connector adds to session_parameters)
    key = (os.getpid(), repr(sorted((k, repr(v)) for k, v in params.items())))
    real = snowflake.connector.connect(**params)
    client = WarehouseClient(RecordingConnection(real, path), SnowflakeDialect())
    client_module._clients[key] = client
    return client


def recorded(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def main(argv: list[str]) -> int:
    import datetime as dt

    import luigi

    from tasks.elt.tasks import PublishTable

    path, table, date = Path(argv[0]), argv[1], dt.date.fromisoformat(argv[2])
    install(path)
    ok = luigi.build([PublishTable(date=date, table=table)], local_scheduler=True, workers=1, log_level="WARNING")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
