"""The delivery event store: every event a provider posted back (SendGrid's Event Webhook, Twilio's status
callbacks, the demo outbox's), one row each, in the campaign's state backend.

Where: the SQLite file <var_dir>/ledger/events.sqlite3 (owner-only, WAL) with `[state] backend = sqlite`,
or the table `delivery_events` of the shared Postgres database; the caller passes
`tasks.state.database(events_path(var_dir))`. The rows hold the recipient's address (needed to
suppress it): the database is owner-only, and no log line of this module names one.

A row (`DeliveryEvent`):

- `dedupe_key`: unique. SendGrid: its `sg_event_id`; Twilio: `<MessageSid>:<MessageStatus>`
  (a callback carries no id of its own). A provider retries a batch until it gets a 2xx, so the same
  event arrives again: it is stored once.
- `provider` (sendgrid, twilio, outbox), `channel` (email, sms).
- `send_id`: our id of the message (`campaign/date/channel/customer_id`, SendKey.send_id) as the
  provider echoed it, or None when the event carries none. `send_key` (`campaign/date/channel`) and
  `customer_id` are its two halves, split once here so that "the events of one send" is an indexed
  equality. An event whose send id matches no ledger row is kept all the same.
- `event`: the normalised event: delivered, deferred, bounced, dropped, complained, unsubscribed,
  group_unsubscribed, group_resubscribed, processed, open, click (SendGrid); queued, sent,
  delivered, undelivered, failed, read... (Twilio's MessageStatus as is); an event name nobody
  mapped yet is kept under its own name. `provider_event` is the provider's own name (bounce,
  spamreport, ...).
- `bounce_type`: SendGrid's `type` of a bounce: `bounce` (hard, permanent) or `blocked` (soft,
  temporary); `bounce_classification` (Invalid Address, Reputation, ...); `reason`: the
  provider's reason text (SendGrid `reason`; Twilio: the meaning of the code from
  tasks/channels/twilio.py's table); `error_code`: Twilio's ErrorCode.
- `provider_message_id` (sg_message_id, MessageSid), `address`, `event_at` (the provider's time,
  epoch seconds; Twilio callbacks carry none: the time received), `received_at`.
- `seq`: assigned on insert, strictly increasing in commit order (SQLite has one writer; on
  Postgres every writer takes one advisory lock until it commits), so a reader that keeps the last
  `seq` it handled gets exactly the events stored after it with `events_since(seq)`: this is what
  an export of "every event stored since the previous export" keeps as its watermark.

Interface (every method one short transaction; thread-safe; shared by processes and hosts on Postgres):

- `EventStore(db)`: creates the table if needed.
- `add(events) -> int`: one batch in ONE transaction, duplicates skipped; returns how many were new.
  When it returns, the batch is committed: only then may the endpoint answer 2xx.
- `events_since(after_seq, limit) -> list[StoredEvent]`: every event with seq > after_seq, by seq.
- `events_of_send(send_key, after_seq=0, limit) -> list[StoredEvent]`: the events of one send
  (`SendKey(campaign, date, channel)` joined by `/`), by seq; poll it with the last seq seen.
- `counts_of_send(send_key) -> {(event, bounce_type, error_code): count}`: one send's outcomes in one
  indexed query (`''` where a column is empty), e.g. for its rates.
- `counts_of_send_since(send_key, after_seq) -> (counts, last_seq)`: the same counts over the events stored
  after `after_seq` only, and the highest seq among them (`after_seq` when none): a poller's cheap increment.
- `last_seq()`, `counts()` ((channel, event, unmatched) -> count; unmatched: no send id),
  `stored_keys(keys)` (which of these dedupe keys are stored).
- `cursor(name) -> int`, `advance(name, seq)`: how far a named reader of the store got (e.g. `ledger`, the
  applier of delivery outcomes and suppressions, tasks/channels/delivery.py); a cursor only moves forward.

Statements are in tasks/state/sql/events/. Reads no luigi.cfg section.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from tasks.state.db import SqlStore

SQL_DIR = Path(__file__).resolve().parent / "sql" / "events"
WRITE_LOCK = 0x6576656E7473  # the advisory lock of event writers on Postgres ("events")
PAGE = 10_000


@dataclass(frozen=True)
class DeliveryEvent:
    """One provider event as stored; `address` is personal data: mask it in logs (tasks/pii.py)."""

    dedupe_key: str
    provider: str
    channel: str
    event: str
    provider_event: str
    event_at: float
    received_at: float
    send_id: str | None = None
    bounce_type: str | None = None
    bounce_classification: str | None = None
    reason: str | None = None
    error_code: str | None = None
    provider_message_id: str | None = None
    address: str | None = None

    @property
    def send_key(self) -> str | None:
        """`campaign/date/channel` of the send id, or None."""
        return self.send_id.rpartition("/")[0] or None if self.send_id else None

    @property
    def customer_id(self) -> str | None:
        """The customer id at the end of the send id, or None."""
        return self.send_id.rpartition("/")[2] or None if self.send_id and "/" in self.send_id else None

    def values(self) -> tuple[object, ...]:
        """The values of its insert, in INSERT_COLUMNS order."""
        return (self.dedupe_key, self.provider, self.channel, self.send_id, self.send_key, self.customer_id,
                self.event, self.provider_event, self.bounce_type, self.bounce_classification, self.reason,
                self.error_code, self.provider_message_id, self.address, self.event_at, self.received_at)


@dataclass(frozen=True)
class StoredEvent(DeliveryEvent):
    """A stored event with its `seq` (strictly increasing in commit order)."""

    seq: int = 0


_COLUMNS = ("seq", "dedupe_key", "provider", "channel", "send_id", "send_key", "customer_id", "event",
            "provider_event", "bounce_type", "bounce_classification", "reason", "error_code", "provider_message_id",
            "address", "event_at", "received_at")
_FIELDS = {f.name for f in fields(StoredEvent)}
INSERT_COLUMNS = _COLUMNS[1:]


def events_path(var_dir: str | os.PathLike[str]) -> Path:
    """<var_dir>/ledger/events.sqlite3, beside the send ledgers and the suppressions (with SQLite state)."""
    return Path(var_dir) / "ledger" / "events.sqlite3"


def _stored(row: Sequence[object]) -> StoredEvent:
    values = dict(zip(_COLUMNS, row, strict=True))
    return StoredEvent(**{k: v for k, v in values.items() if k in _FIELDS})  # type: ignore[arg-type]  # row values are untyped


class EventStore(SqlStore):
    """The store over one Database (see the module docstring for its interface)."""

    sql_dir = SQL_DIR

    def add(self, events: Iterable[DeliveryEvent]) -> int:
        """Store a batch in one transaction (duplicates skipped); returns how many were new. Committed on return."""
        rows = [e.values() for e in events]
        if not rows:
            return 0
        with self.db.transaction() as tx:
            tx.rows(self._sql("write_lock"), {"lock_id": WRITE_LOCK})
            # Postgres: COPY into this connection's staging table, then one INSERT ... SELECT (about 1.8x the rate of
            # one INSERT over unnest() of per-column arrays, measured here); SQLite: one prepared INSERT per row
            tx.script(self._sql("stage"))
            return tx.insert_rows(self._sql("insert"), "delivery_events_in", INSERT_COLUMNS, rows)

    def events_since(self, after_seq: int = 0, limit: int = PAGE) -> list[StoredEvent]:
        """The events stored after `after_seq`, oldest first (at most `limit`)."""
        with self.db.transaction() as tx:
            return [_stored(r) for r in tx.rows(self._sql("since"), {"after": after_seq, "limit": limit})]

    def events_of_send(self, send_key: str, after_seq: int = 0, limit: int = PAGE) -> list[StoredEvent]:
        """The events of one send (`campaign/date/channel`) stored after `after_seq`, oldest first."""
        with self.db.transaction() as tx:
            rows = tx.rows(self._sql("of_send"), {"send_key": send_key, "after": after_seq, "limit": limit})
        return [_stored(r) for r in rows]

    def last_seq(self) -> int:
        """The highest seq stored (0 when empty)."""
        with self.db.transaction() as tx:
            return int(tx.rows(self._sql("last_seq"))[0][0])

    def counts(self) -> dict[tuple[str, str, bool], int]:
        """(channel, event, unmatched) -> events stored; unmatched: the event carried no send id."""
        with self.db.transaction() as tx:
            return {(c, e, bool(u)): int(n) for c, e, u, n in tx.rows(self._sql("counts"))}

    def counts_of_send(self, send_key: str) -> dict[tuple[str, str, str], int]:
        """One send's outcomes: (event, bounce_type, error_code) -> count, `''` where a column is empty."""
        return self.counts_of_send_since(send_key, 0)[0]

    def counts_of_send_since(self, send_key: str, after_seq: int) -> tuple[dict[tuple[str, str, str], int], int]:
        """The counts of `counts_of_send` over the events of one send stored after `after_seq`, and the highest seq
        among them (`after_seq` when none): keep it and pass it back to count every event once."""
        with self.db.transaction() as tx:
            rows = tx.rows(self._sql("counts_of_send_since"), {"send_key": send_key, "after": after_seq})
        return {(e, b, c): int(n) for e, b, c, n, _ in rows}, max([after_seq, *(int(r[4]) for r in rows)])

    def cursor(self, name: str) -> int:
        """The seq the reader `name` handled last (0 before its first advance)."""
        with self.db.transaction() as tx:
            rows = tx.rows(self._sql("cursor_get"), {"name": name})
        return int(rows[0][0]) if rows else 0

    def advance(self, name: str, seq: int) -> None:
        """Record that the reader `name` handled every event up to `seq` (a cursor never moves back)."""
        with self.db.transaction() as tx:
            tx.execute(self._sql("cursor_advance"), {"name": name, "seq": seq})

    def stored_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of `keys` (dedupe keys) are stored."""
        if not keys:
            return set()
        with self.db.transaction() as tx:
            return {r[0] for r in tx.rows(self._sql("keys_among"), {"keys": list(keys)})}
