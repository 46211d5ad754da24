"""Storm control for failure alerts: which failures of a run were alerted, counted or deferred.

One SQLite file (<var_dir>/alerts/ledger.sqlite, path given by the caller) shared by every
process of a run; each decision is one BEGIN IMMEDIATE transaction, so two forked task
processes failing at the same moment cannot both take the last individual-alert slot.

A run is identified by `run_id` (see tasks/ops/alerts.py: the pid and start time of the process
that imported the package, inherited by Luigi's forked task processes). Per run and task:
the first failure is alerted (while the run has fewer than `cap` individual alerts), later
attempts only raise `count` (or alert again with `alert_on_retry`), and failures beyond the
cap are `deferred` to the end-of-run digest. No luigi imports.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from tasks.files import private_file

ALERT = "alert"  # send an individual alert now
COUNT = "count"  # a repeat of an alerted task: counted, reported in the digest
DEFER = "defer"  # over the cap: goes into the digest
# the suffix of a task_id under which a task's data-check warning is kept apart from its failures:
# alerted like a failure, but the task went on, so the run summary counts it as a warning
WARNING_SUFFIX = "#check-warning"
_IS_WARNING = f"substr(task_id, -{len(WARNING_SUFFIX)}) = '{WARNING_SUFFIX}'"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS failures (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    count INTEGER NOT NULL,
    reported_count INTEGER NOT NULL,
    alerted INTEGER NOT NULL,
    first_at REAL NOT NULL,
    last_at REAL NOT NULL,
    PRIMARY KEY (run_id, task_id)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    alerts_sent INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Decision:
    """What to do with one failure, and how many times this task has failed in the run so far."""

    action: str
    count: int


@dataclass(frozen=True)
class PendingFailure:
    """A failure the digest still has to report: deferred (never alerted) or repeated since."""

    task_id: str
    summary: str
    count: int
    alerted: bool
    first_at: float


class AlertLedger:
    """The ledger file; opens a connection per call so it is safe to use after a fork."""

    def __init__(self, path: Path) -> None:
        self.path = path
        private_file(path)
        conn = self._connect()
        try:
            conn.executescript(_SCHEMA)
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def record(self, run_id: str, task_id: str, summary: str, *, cap: int, alert_on_retry: bool) -> Decision:
        """Record one failure and decide, atomically across processes, whether it alerts now."""
        now = time.time()
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR IGNORE INTO runs (run_id, alerts_sent) VALUES (?, 0)", (run_id,))
            (sent,) = conn.execute("SELECT alerts_sent FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            row = conn.execute(
                "SELECT count, alerted FROM failures WHERE run_id = ? AND task_id = ?", (run_id, task_id)
            ).fetchone()
            count = 1 if row is None else row[0] + 1
            was_alerted = bool(row and row[1])
            if row is not None and was_alerted and not alert_on_retry:
                action = COUNT
            elif sent < cap:
                action = ALERT
            else:
                action = DEFER
            alerted = action == ALERT
            if row is None:
                conn.execute(
                    "INSERT INTO failures VALUES (?, ?, ?, 1, ?, ?, ?, ?)",
                    (run_id, task_id, summary, 1 if alerted else 0, int(alerted), now, now),
                )
            else:
                conn.execute(
                    "UPDATE failures SET count = ?, summary = ?, last_at = ?, alerted = MAX(alerted, ?),"
                    " reported_count = CASE WHEN ? THEN ? ELSE reported_count END"
                    " WHERE run_id = ? AND task_id = ?",
                    (count, summary, now, int(alerted), int(alerted), count, run_id, task_id),
                )
            if alerted:
                conn.execute("UPDATE runs SET alerts_sent = alerts_sent + 1 WHERE run_id = ?", (run_id,))
            conn.execute("COMMIT")
            return Decision(action, count)
        finally:
            conn.close()

    def run_counts(self, run_id: str) -> tuple[int, int, int]:
        """(tasks that failed in run `run_id`, tasks that only warned, alerts sent individually)."""
        conn = self._connect()
        try:
            failed, warned, alerted = conn.execute(
                f"SELECT COALESCE(SUM(NOT {_IS_WARNING}), 0), COALESCE(SUM({_IS_WARNING}), 0),"
                " COALESCE(SUM(alerted), 0) FROM failures WHERE run_id = ?", (run_id,)
            ).fetchone()
            return int(failed), int(warned), int(alerted)
        finally:
            conn.close()

    def run_tasks(self, run_id: str, limit: int = 20, *, warnings: bool = False) -> list[str]:
        """What failed (or, with `warnings`, only warned) in run `run_id`: the redacted one-line
        summaries, first first."""
        conn = self._connect()
        try:
            rows = conn.execute(
                f"SELECT summary FROM failures WHERE run_id = ? AND {'' if warnings else 'NOT '}{_IS_WARNING}"
                " ORDER BY first_at LIMIT ?", (run_id, limit)).fetchall()
            return [r[0] for r in rows]
        finally:
            conn.close()

    def take_pending(self, run_id: str | None = None, since: float | None = None) -> list[PendingFailure]:
        """Failures not yet reported in full (of one run, or of every run since `since`), marked reported."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            where = "count > reported_count"
            args: list[object] = []
            if run_id is not None:
                where += " AND run_id = ?"
                args.append(run_id)
            if since is not None:
                where += " AND last_at >= ?"
                args.append(since)
            rows = conn.execute(
                f"SELECT run_id, task_id, summary, count, alerted, first_at FROM failures WHERE {where}"
                " ORDER BY first_at",
                args,
            ).fetchall()
            for run, task_id, *_ in rows:
                conn.execute(
                    "UPDATE failures SET reported_count = count WHERE run_id = ? AND task_id = ?", (run, task_id)
                )
            conn.execute("COMMIT")
            return [PendingFailure(r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]
        finally:
            conn.close()
