"""Task completion markers in the shared Postgres database, with the task's result beside them.

luigi.contrib.postgres's PostgresTarget keeps a marker row per finished task so a worker on any
host sees it done; it needs psycopg2. This is the same idea on psycopg 3 and the state
database, and the row also holds the task's result document (the JSON a send writes), so a
task on another host can read a shard's counts without its host's files.
Reads no luigi.cfg section: the caller passes the database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import luigi

from tasks.state.db import Database

SQL_DIR = str(Path(__file__).resolve().parent / "sql" / "markers")


class MarkerTarget(luigi.Target):
    """A marker row `marker_id` in `task_markers`: exists once written; `read()` gives its JSON document."""

    def __init__(self, db: Database, marker_id: str) -> None:
        self.db = db
        self.marker_id = marker_id
        self._ready = False

    def _schema(self) -> None:
        if not self._ready:
            with self.db.transaction() as tx:
                tx.script(self.db.sql(SQL_DIR, "schema"))
            self._ready = True

    def exists(self) -> bool:
        return self.read() is not None

    def read(self) -> dict[str, Any] | None:
        """The document written with the marker, or None when the task has not finished."""
        self._schema()
        with self.db.transaction() as tx:
            rows = tx.rows(self.db.sql(SQL_DIR, "get"), {"marker_id": self.marker_id})
        return json.loads(rows[0][0]) if rows else None

    def write(self, payload: dict[str, Any]) -> None:
        """Mark the task done with its result (one statement: the marker and the document appear together)."""
        self._schema()
        with self.db.transaction() as tx:
            tx.execute(self.db.sql(SQL_DIR, "put"),
                       {"marker_id": self.marker_id, "payload": json.dumps(payload, sort_keys=True)})

    def remove(self) -> int:
        """Unmark the task and every marker whose id extends this one's with `/...` (a send's shards); returns
        how many rows went."""
        self._schema()
        prefix = f"{self.marker_id}/"
        with self.db.transaction() as tx:
            return tx.execute(self.db.sql(SQL_DIR, "remove"),
                              {"marker_id": self.marker_id, "prefix": prefix, "prefix_chars": len(prefix)})

    def __repr__(self) -> str:
        return f"MarkerTarget({self.marker_id!r})"


def present(markers: Sequence[MarkerTarget]) -> set[str]:
    """The ids among `markers` (one database) that exist, read in one range query (a RangeDaily backfill asks
    for every day of its range at once)."""
    if not markers:
        return set()
    first = markers[0]
    first._schema()
    ids = sorted(m.marker_id for m in markers)
    with first.db.transaction() as tx:
        rows = tx.rows(first.db.sql(SQL_DIR, "between"), {"low": ids[0], "high": ids[-1]})
    return {str(r[0]) for r in rows} & set(ids)
