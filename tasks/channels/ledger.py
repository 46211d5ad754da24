"""The durable send ledger: one SQLite row per (campaign, date, channel, customer_id).

States: `pending` (not sent yet, or waiting for a retry or for quiet hours to end), `sending`
(the request is about to go out or is in flight), and the final states `sent`, `failed` (with a
reason), `unknown` (the request may or may not have reached the provider) and the skipped
states `suppressed`, `capped` and `duplicate_address` (never sent, never a failure). The sender commits
`sending` before each request and the outcome after it, so a process killed at any point
leaves every recipient either untouched, final, or `sending`; the next run turns `sending`
into `unknown` (`recover_in_flight`) and never sends those again unless asked once
(`reopen_unknown`, tracked in `unknown_resends`).

Durability: WAL with `synchronous=NORMAL`. A commit is in the WAL file (the OS page cache)
when `commit()` returns, so it survives the process being killed (SIGKILL, OOM); only a
power loss or kernel crash can lose the last few commits, which for a `sending` row means
that recipient could be sent again. `synchronous=FULL` (an fsync per commit, several ms on
most disks) closes that gap at a large cost in throughput. Reads no luigi.cfg section: the
caller passes the path (<var_dir>/ledger/<channel>.sqlite3).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import ConfigError
from tasks.files import FILE_MODE, private_file

PENDING, SENDING, SENT, FAILED, UNKNOWN = "pending", "sending", "sent", "failed", "unknown"
# final states of recipients skipped before any request (opt-out, frequency cap, a shared address)
SUPPRESSED, CAPPED, DUPLICATE_ADDRESS = "suppressed", "capped", "duplicate_address"
SKIPPED_STATES = (SUPPRESSED, CAPPED, DUPLICATE_ADDRESS)
FINAL_STATES = (SENT, FAILED, UNKNOWN, *SKIPPED_STATES)
STATES = (PENDING, SENDING, *FINAL_STATES)
# states in which the customer may have got (or is getting) a message: what a frequency cap counts
MESSAGED_STATES = (SENDING, SENT, UNKNOWN)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS sends (
    campaign TEXT NOT NULL,
    date TEXT NOT NULL,
    channel TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ({", ".join(repr(s) for s in STATES)})),
    attempts INTEGER NOT NULL DEFAULT 0,
    unknown_resends INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    provider_message_id TEXT,
    next_attempt_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (campaign, date, channel, customer_id)
) WITHOUT ROWID
"""

# the frequency cap looks up one customer's recent messages across campaigns and dates
_CUSTOMER_INDEX = "CREATE INDEX IF NOT EXISTS sends_by_customer ON sends (customer_id, updated_at)"


@dataclass(frozen=True)
class SendKey:
    """Identity of one channel send: every ledger row of it shares these three values."""

    campaign: str
    date: str
    channel: str

    def send_id(self, customer_id: str) -> str:
        """Our id of one message, carried to providers that accept custom arguments."""
        return f"{self.campaign}/{self.date}/{self.channel}/{customer_id}"


@dataclass(frozen=True)
class PendingRow:
    """A recipient still to send: how many attempts it already had and when it may go next."""

    customer_id: str
    attempts: int
    next_attempt_at: float | None


class SendLedger:
    """SQLite ledger of one channel; thread-safe (one connection behind a lock, short transactions)."""

    def __init__(self, path: str | os.PathLike[str], busy_timeout_ms: int = 30_000):
        self.path = Path(path)
        private_file(self.path)  # addresses and reasons: 0600 (SQLite gives its -wal and -shm the same mode)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise ConfigError(f"send ledger {self.path}: SQLite refused WAL mode (got {mode})")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._migrate_states()
        self._conn.execute(_SCHEMA)
        self._conn.execute(_CUSTOMER_INDEX)

    def _migrate_states(self) -> None:
        """A ledger made before the skipped states has a CHECK that rejects them: rebuild its table once."""
        row = self._conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'sends'").fetchone()
        if row is None or f"'{DUPLICATE_ADDRESS}'" in row[0]:
            return
        with self._tx() as conn:
            conn.execute("ALTER TABLE sends RENAME TO sends_before_skipped_states")
            conn.execute(_SCHEMA)
            conn.execute("INSERT INTO sends SELECT * FROM sends_before_skipped_states")
            conn.execute("DROP TABLE sends_before_skipped_states")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SendLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def run_lock(self, key: SendKey) -> Iterator[None]:
        """Hold an exclusive lock on this send for the whole run (a second live run fails fast).

        Without it, a second process would mistake the first one's `sending` rows for the
        leftovers of a dead run and turn them into `unknown`.
        """
        lock_path = self.path.parent / f"{key.channel}-{_safe(key.campaign)}-{key.date}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(
                    f"another process is sending {key.channel} for campaign {key.campaign!r} on {key.date}"
                ) from None
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def seed(self, key: SendKey, customer_ids: Iterable[str]) -> int:
        """Add a `pending` row for every recipient not in the ledger yet; returns how many were added."""
        now = time.time()
        rows = ((key.campaign, key.date, key.channel, cid, now, now) for cid in customer_ids)
        with self._tx() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO sends (campaign, date, channel, customer_id, state, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                rows,
            )
            return conn.total_changes - before

    def recover_in_flight(self, key: SendKey) -> int:
        """Turn rows a dead run left in `sending` into `unknown`; returns how many."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE sends SET state = 'unknown', reason = 'in flight when a previous run stopped', "
                "updated_at = ? WHERE campaign = ? AND date = ? AND channel = ? AND state = 'sending'",
                (time.time(), key.campaign, key.date, key.channel),
            )
            return cur.rowcount

    def reopen_unknown(self, key: SendKey) -> int:
        """Put `unknown` rows that were never re-sent back to `pending`, once each; returns how many."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE sends SET state = 'pending', unknown_resends = unknown_resends + 1, attempts = 0, "
                "next_attempt_at = NULL, updated_at = ? WHERE campaign = ? AND date = ? AND channel = ? "
                "AND state = 'unknown' AND unknown_resends = 0",
                (time.time(), key.campaign, key.date, key.channel),
            )
            return cur.rowcount

    def pending(self, key: SendKey) -> list[PendingRow]:
        """Rows still `pending`, by customer_id."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT customer_id, attempts, next_attempt_at FROM sends WHERE campaign = ? AND date = ? "
                "AND channel = ? AND state = 'pending' ORDER BY customer_id",
                (key.campaign, key.date, key.channel),
            ).fetchall()
        return [PendingRow(*row) for row in rows]

    def mark_sending(self, key: SendKey, customer_ids: Sequence[str]) -> list[str]:
        """Claim rows: `pending` -> `sending` with one more attempt, committed before the request goes out.

        Returns the ids this call claimed: a row another process claimed (or finished) first is
        not pending any more, its conditional update matches nothing, and it must not be sent.
        """
        return self._update(
            key,
            customer_ids,
            "state = 'sending', attempts = attempts + 1, next_attempt_at = NULL",
            (),
            expect=PENDING,
        )

    def mark_sent(self, key: SendKey, sent: Sequence[tuple[str, str | None]]) -> None:
        """`sending` -> `sent`, with the provider's message id per recipient."""
        now = time.time()
        with self._tx() as conn:
            conn.executemany(
                "UPDATE sends SET state = 'sent', reason = NULL, provider_message_id = ?, updated_at = ? "
                "WHERE campaign = ? AND date = ? AND channel = ? AND customer_id = ? AND state = 'sending'",
                [(mid, now, key.campaign, key.date, key.channel, cid) for cid, mid in sent],
            )

    def mark_failed(self, key: SendKey, customer_ids: Sequence[str], reason: str) -> None:
        """-> `failed` (final) with the reason; from `sending`, or from `pending` when nothing was sent."""
        self._update(key, customer_ids, "state = 'failed', reason = ?", (reason,))

    def mark_unknown(self, key: SendKey, customer_ids: Sequence[str], reason: str) -> None:
        """`sending` -> `unknown` (final): the provider may have the message; not re-sent by default."""
        self._update(key, customer_ids, "state = 'unknown', reason = ?", (reason,), expect=SENDING)

    def mark_retry(self, key: SendKey, customer_ids: Sequence[str], reason: str, next_attempt_at: float) -> None:
        """`sending` -> `pending` after an error known not to have delivered; retried at `next_attempt_at`."""
        self._update(
            key, customer_ids, "state = 'pending', reason = ?, next_attempt_at = ?", (reason, next_attempt_at),
            expect=SENDING,
        )

    def mark_skipped(self, key: SendKey, customer_ids: Sequence[str], state: str, reason: str) -> None:
        """-> a skipped final state (`suppressed`, `capped`, `duplicate_address`) with the reason, from
        `pending` (screened before the request) or `sending` (the provider answered an opt-out)."""
        if state not in SKIPPED_STATES:
            raise ValueError(f"{state!r} is not a skipped state; expected one of {SKIPPED_STATES}")
        self._update(key, customer_ids, "state = ?, reason = ?", (state, reason))

    def hold(self, key: SendKey, customer_ids: Sequence[str], reason: str, until: float) -> list[str]:
        """Keep `pending` rows pending until `until` (quiet hours): a later run resumes them then."""
        return self._update(key, customer_ids, "reason = ?, next_attempt_at = ?", (reason, until), expect=PENDING)

    def recent_messages(self, key: SendKey, customer_id: str, since: float) -> int:
        """Messages to `customer_id` on this ledger's channel updated since `since` (epoch s), in any
        campaign and date but `key`'s own send: what a frequency cap counts."""
        with self._lock:
            (count,) = self._conn.execute(
                f"SELECT COUNT(*) FROM sends WHERE customer_id = ? AND channel = ? AND updated_at >= ? "
                f"AND state IN ({', '.join('?' * len(MESSAGED_STATES))}) AND NOT (campaign = ? AND date = ?)",
                (customer_id, key.channel, since, *MESSAGED_STATES, key.campaign, key.date),
            ).fetchone()
        return int(count)

    def _update(
        self,
        key: SendKey,
        customer_ids: Sequence[str],
        assignments: str,
        values: tuple[object, ...],
        expect: str | None = None,
    ) -> list[str]:
        """Move the rows still in `expect` (else in pending or sending), in one transaction; returns
        the ids whose row this call changed (a conditional update per row, its row count checked)."""
        guard = " AND state = ?" if expect else " AND state IN ('pending', 'sending')"
        sql = (f"UPDATE sends SET {assignments}, updated_at = ? WHERE campaign = ? AND date = ? AND channel = ? "
               f"AND customer_id = ?{guard}")
        now = time.time()
        changed = []
        with self._tx() as conn:
            for cid in customer_ids:
                params = (*values, now, key.campaign, key.date, key.channel, cid, *((expect,) if expect else ()))
                if conn.execute(sql, params).rowcount == 1:
                    changed.append(cid)
        return changed

    def states(self, key: SendKey) -> dict[str, str]:
        """customer_id -> state for every row of this send."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT customer_id, state FROM sends WHERE campaign = ? AND date = ? AND channel = ?",
                (key.campaign, key.date, key.channel),
            ).fetchall()
        return dict(rows)

    def rows(self, key: SendKey) -> list[dict[str, object]]:
        """Every row of this send as a dict (for reports and tests; holds raw ids, never log it whole)."""
        with self._lock:
            cur = self._conn.execute(
                "SELECT * FROM sends WHERE campaign = ? AND date = ? AND channel = ? ORDER BY customer_id",
                (key.campaign, key.date, key.channel),
            )
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def ledger_path(var_dir: str | os.PathLike[str], channel: str) -> Path:
    """<var_dir>/ledger/<channel>.sqlite3: one database per channel, so three sends never share a writer."""
    return Path(var_dir) / "ledger" / f"{channel}.sqlite3"


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
