"""The suppression store: addresses (and customers) that must never be messaged again on a channel.

One SQLite table (WAL, owner-only file, <var_dir>/ledger/suppressions.sqlite3) with a row per
(channel, kind, value): `channel` is email, sms, push or `all`; `kind` is `address` (a normalised
e-mail, E.164 phone or device token) or `customer` (a customer id, recorded by a one-click
unsubscribe); `source` says who added it (`twilio:21610`, `fcm:UNREGISTERED`,
`unsubscribe`, `cli`, `import`), `reason` why. The project fills it itself: provider opt-out
answers as they happen, the unsubscribe server on each valid POST, `python -m tasks suppress`.
Several processes (three sends, the unsubscribe server) share it: WAL and a busy timeout.

The statements are plain SQL (no SQLite-only syntax but `INSERT OR IGNORE`), one small class,
so a Postgres backend can take it over. Callers normalise addresses (tasks/addresses.py); this
module compares values exactly. Reads no luigi.cfg section: the caller passes the path.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import ConfigError
from tasks.files import private_file

CHANNELS = ("email", "sms", "push", "all")
KINDS = ("address", "customer")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS suppressions (
    channel TEXT NOT NULL CHECK (channel IN ({", ".join(repr(c) for c in CHANNELS)})),
    kind TEXT NOT NULL CHECK (kind IN ({", ".join(repr(k) for k in KINDS)})),
    value TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (channel, kind, value)
)
"""
_INSERT = ("INSERT OR IGNORE INTO suppressions (channel, kind, value, source, reason, created_at) "
           "VALUES (?, ?, ?, ?, ?, ?)")
_LOOKUP = (
    "SELECT channel, kind, source, reason FROM suppressions WHERE channel IN (?, 'all') "
    "AND ((kind = 'address' AND value = ?) OR (kind = 'customer' AND value = ?)) "
    "ORDER BY created_at LIMIT 1"
)
_DELETE = "DELETE FROM suppressions WHERE channel = ? AND kind = ? AND value = ?"
_LIST = "SELECT channel, kind, value, source, reason, created_at FROM suppressions ORDER BY channel, kind, value"


@dataclass(frozen=True)
class Suppression:
    """One entry; `value` is personal data (an address or a customer id): mask it in logs."""

    channel: str
    kind: str
    value: str
    source: str
    reason: str | None = None
    created_at: float = 0.0


def suppressions_path(var_dir: str | os.PathLike[str]) -> Path:
    """<var_dir>/ledger/suppressions.sqlite3, beside the send ledgers."""
    return Path(var_dir) / "ledger" / "suppressions.sqlite3"


class SuppressionStore:
    """The store; thread-safe (one connection behind a lock), shared by processes through SQLite."""

    def __init__(self, path: str | os.PathLike[str], busy_timeout_ms: int = 30_000):
        self.path = Path(path)
        private_file(self.path)  # addresses: 0600
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise ConfigError(f"suppression store {self.path}: SQLite refused WAL mode (got {mode})")
        self._conn.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SuppressionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, entries: Iterable[Suppression]) -> int:
        """Add entries (an existing one keeps its first source and time); returns how many were new."""
        now = time.time()
        rows = []
        for e in entries:
            if e.channel not in CHANNELS or e.kind not in KINDS or not e.value:
                raise ValueError(f"not a suppression: channel {e.channel!r}, kind {e.kind!r}")
            rows.append((e.channel, e.kind, e.value, e.source, e.reason, e.created_at or now))
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                before = self._conn.total_changes
                self._conn.executemany(_INSERT, rows)
                added = self._conn.total_changes - before
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return added

    def remove(self, channel: str, kind: str, value: str) -> bool:
        """Remove one entry; True when it was there."""
        with self._lock:
            return self._conn.execute(_DELETE, (channel, kind, value)).rowcount == 1

    def find(self, channel: str, address: str, customer_id: str = "") -> Suppression | None:
        """The entry that suppresses `address` or `customer_id` on `channel` (or on `all`), if any."""
        with self._lock:
            row = self._conn.execute(_LOOKUP, (channel, address, customer_id)).fetchone()
        if row is None:
            return None
        found_channel, kind, source, reason = row
        return Suppression(found_channel, kind, address if kind == "address" else customer_id, source, reason)

    def entries(self) -> list[Suppression]:
        """Every entry, by channel, kind and value (personal data: for the operator, never for logs)."""
        with self._lock:
            rows = self._conn.execute(_LIST).fetchall()
        return [Suppression(*row) for row in rows]
