"""The suppression store: addresses (and customers) that must never be messaged again on a channel.

One table in the campaign's state backend (tasks/state/): the SQLite file
<var_dir>/ledger/suppressions.sqlite3 (owner-only, WAL) on one host, or the shared Postgres
database with `[state] backend = postgres`, so an opt-out recorded on any host (or by the
unsubscribe server) is honoured by every send. A row per (channel, kind, value): `channel` is
email, sms, push or `all`; `kind` is `address` (a normalised e-mail, E.164 phone or device
token) or `customer` (a customer id, recorded by a one-click unsubscribe); `source` says who
added it (`twilio`, `fcm`, `unsubscribe`, `cli`, `import`; `sendgrid`, `twilio` or `outbox` for a
delivery event), `reason` why. The project fills it itself: provider opt-out answers as they
happen, the unsubscribe server on each valid POST, delivery events that say "never again" (hard
bounces, complaints, provider unsubscribes, Twilio 21610/30005/30006: tasks/channels/delivery.py),
`python -m tasks suppress`.

Statements are in tasks/channels/sql/suppressions/. Callers normalise addresses
(tasks/addresses.py); this module compares values exactly. Reads no luigi.cfg section: the
caller passes the path or the shared database.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.state.db import SqlStore

CHANNELS = ("email", "sms", "push", "all")
KINDS = ("address", "customer")
SQL_DIR = Path(__file__).resolve().parent / "sql" / "suppressions"


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
    """<var_dir>/ledger/suppressions.sqlite3, beside the send ledgers (with SQLite state)."""
    return Path(var_dir) / "ledger" / "suppressions.sqlite3"


class SuppressionStore(SqlStore):
    """The store; thread-safe (every method is one short transaction), shared by processes and, on Postgres,
    by hosts."""

    sql_dir = SQL_DIR

    def add(self, entries: Iterable[Suppression]) -> int:
        """Add entries (an existing one keeps its first source and time); returns how many were new."""
        now = time.time()
        rows = []
        for e in entries:
            if e.channel not in CHANNELS or e.kind not in KINDS or not e.value:
                raise ValueError(f"not a suppression: channel {e.channel!r}, kind {e.kind!r}")
            rows.append({"channel": e.channel, "kind": e.kind, "value": e.value, "source": e.source,
                         "reason": e.reason, "created_at": e.created_at or now})
        if not rows:
            return 0
        with self.db.transaction() as tx:
            return tx.executemany(self._sql("add"), rows)

    def remove(self, channel: str, kind: str, value: str) -> bool:
        """Remove one entry; True when it was there."""
        with self.db.transaction() as tx:
            return tx.execute(self._sql("remove"), {"channel": channel, "kind": kind, "value": value}) == 1

    def find_many(self, channel: str, pairs: Sequence[tuple[str, str]]) -> dict[str, Suppression]:
        """customer_id -> the oldest entry that suppresses it on `channel` (or on `all`), by its address or its
        customer id, for the (customer_id, address) pairs that have one: one query."""
        if not pairs:
            return {}
        with self.db.transaction() as tx:
            rows = tx.rows(self._sql("find"), {"channel": channel, "addresses": [a for _, a in pairs],
                                               "ids": [c for c, _ in pairs]})
        if not rows:
            return {}
        first: dict[tuple[str, str], Suppression] = {}
        for row in rows:  # oldest first: keep the first entry per (kind, value)
            first.setdefault((row[1], row[2]), Suppression(*row))
        found = {}
        for cid, address in pairs:
            entry = first.get(("address", address)) or first.get(("customer", cid))
            if entry is not None:
                found[cid] = entry
        return found

    def find(self, channel: str, address: str, customer_id: str = "") -> Suppression | None:
        """The entry that suppresses `address` or `customer_id` on `channel` (or on `all`), if any."""
        return self.find_many(channel, [(customer_id, address)]).get(customer_id)

    def entries(self) -> list[Suppression]:
        """Every entry, by channel, kind and value (personal data: for the operator, never for logs)."""
        with self.db.transaction() as tx:
            return [Suppression(*row) for row in tx.rows(self._sql("entries"))]

