"""Sends held by their breaker, and their releases: one row per send in the campaign's state backend.

When a send's breaker trips (tasks/channels/breaker.py) the send records its hold here with the figures; every
later run of that send stops before its first claim until a person releases it (`python -m tasks release-send`),
which records who (the OS user) and when; from then on that send runs with its breaker off. `hold()` tells
whether this call recorded the hold, so the alert about it is sent once, whichever shard or rerun trips again.

Where: the SQLite file <var_dir>/ledger/holds.sqlite3 with `[state] backend = sqlite`, or the table
`send_holds` of the shared Postgres database; the caller passes `tasks.state.database(holds_path(var_dir))`.
No row holds personal data. Statements are in tasks/state/sql/holds/. Reads no luigi.cfg section.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.state.db import SqlStore

SQL_DIR = Path(__file__).resolve().parent / "sql" / "holds"


@dataclass(frozen=True)
class SendHold:
    """One held send (`send_key`: campaign/date/channel): why, the breaker's figures, and its release if any."""

    send_key: str
    held_at: float
    reason: str
    figures: dict[str, Any]
    released_at: float | None = None
    released_by: str | None = None

    @property
    def released(self) -> bool:
        return self.released_at is not None


def holds_path(var_dir: str | os.PathLike[str]) -> Path:
    """<var_dir>/ledger/holds.sqlite3, beside the send ledgers and the event store (with SQLite state)."""
    return Path(var_dir) / "ledger" / "holds.sqlite3"


def _hold(row: Sequence[Any]) -> SendHold:
    key, held_at, reason, figures, released_at, released_by = row
    return SendHold(key, float(held_at), reason, json.loads(figures),
                    None if released_at is None else float(released_at), released_by)


class SendHolds(SqlStore):
    """The hold records over one Database (every method one short transaction)."""

    sql_dir = SQL_DIR

    def hold(self, send_key: str, reason: str, figures: dict[str, Any], at: float | None = None) -> bool:
        """Record the send as held; True when this call recorded it, False when it was held already."""
        params = {"send_key": send_key, "held_at": time.time() if at is None else at, "reason": reason,
                  "figures": json.dumps(figures, sort_keys=True)}
        with self.db.transaction() as tx:
            return tx.execute(self._sql("hold"), params) == 1

    def get(self, send_key: str) -> SendHold | None:
        """The send's hold record, or None when it was never held."""
        with self.db.transaction() as tx:
            rows = tx.rows(self._sql("get"), {"send_key": send_key})
        return _hold(rows[0]) if rows else None

    def release(self, send_key: str, who: str, at: float | None = None) -> SendHold | None:
        """Release a held send (its breaker off from now on); returns the record (its first release kept when it
        was released already), or None when the send is not held."""
        params = {"send_key": send_key, "released_at": time.time() if at is None else at, "released_by": who}
        with self.db.transaction() as tx:
            tx.execute(self._sql("release"), params)
        return self.get(send_key)

    def all(self) -> list[SendHold]:
        """Every hold record, oldest first."""
        with self.db.transaction() as tx:
            return [_hold(r) for r in tx.rows(self._sql("all"))]
