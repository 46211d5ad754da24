"""The durable send ledger: one row per (campaign, date, channel, customer_id), on SQLite or Postgres.

States: `pending` (not sent yet, or waiting for a retry or for quiet hours to end), `sending`
(the request is about to go out or is in flight), and the final states `sent`, `failed` (with a
reason), `unknown` (the request may or may not have reached the provider) and the skipped states
`suppressed`, `capped` and `duplicate_address` (never sent, never a failure). The sender commits
`sending` before each request and the outcome after it, so a process killed at any point
leaves every recipient either untouched, final, or `sending`; the next run turns `sending`
into `unknown` (`recover_in_flight`) and never sends those again unless asked once
(`reopen_unknown`, tracked in `unknown_resends`).

Delivery outcomes: apart from its state, a row keeps the latest outcome the provider reported for its message
(`delivery`: delivered, deferred, bounced, dropped, complained, undelivered, failed; `delivery_type`: hard or soft
for a bounce; `delivery_detail`: the bounce classification, the Twilio error code or the drop reason;
`delivery_at`: the event's time), set by `apply_outcomes` from the delivery event store
(tasks/channels/delivery.py decides what wins). The state is never changed by an event.

Durability: WAL with `synchronous=NORMAL`. A commit is in the WAL file (the OS page cache)
when `commit()` returns, so it survives the process being killed (SIGKILL, OOM); only a
power loss or kernel crash can lose the last few commits, which for a `sending` row means
that recipient could be sent again. `synchronous=FULL` (an fsync per commit, several ms on
most disks) closes that gap at a large cost in throughput. On Postgres a commit is durable on
the server, and every host sharing the database sees it.

Shards: a row carries the shard its send was split into when it was seeded; a shard's run
recovers only its own `sending` rows, under its own lock. Statements are in
tasks/channels/sql/ledger/ (one file each, a dialect's own file where the engines differ).
Reads no luigi.cfg section: the caller passes the path (<var_dir>/ledger/<channel>.sqlite3)
or the shared database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.channels.screen import ClaimCap
from tasks.errors import ConfigError, LockHeldError, LockLostError
from tasks.state.db import Database, Tx, as_database

PENDING, SENDING, SENT, FAILED, UNKNOWN = "pending", "sending", "sent", "failed", "unknown"
# final states of recipients skipped before any request (opt-out, frequency cap, a shared address)
SUPPRESSED, CAPPED, DUPLICATE_ADDRESS = "suppressed", "capped", "duplicate_address"
SKIPPED_STATES = (SUPPRESSED, CAPPED, DUPLICATE_ADDRESS)
FINAL_STATES = (SENT, FAILED, UNKNOWN, *SKIPPED_STATES)
STATES = (PENDING, SENDING, *FINAL_STATES)

SQL_DIR = Path(__file__).resolve().parent / "sql" / "ledger"
ANALYZE_FIRST = 1000  # Postgres: rows seeded by this process before the first ANALYZE of `sends` (then at 4x each)
_SENDING = "state = 'sending', attempts = attempts + 1, next_attempt_at = NULL"  # a claim's SET list
logger = logging.getLogger(__name__)


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
class DeliveryOutcome:
    """What the provider reported of one message (a ledger row): `outcome` (delivered, deferred, bounced, dropped,
    complained, undelivered, failed), `kind` (hard or soft, for a bounce), `detail` (classification, error code,
    drop reason), `at` (the event's time, epoch s), `bad` (1: a final bad outcome, a hard bounce or a complaint)
    and `rank` (which wins at the same time)."""

    campaign: str
    date: str
    customer_id: str
    outcome: str
    kind: str | None
    detail: str | None
    at: float
    bad: int
    rank: int


_OUTCOME_FIELDS = ("campaign", "date", "customer_id", "outcome", "kind", "detail", "at", "bad", "rank")


@dataclass(frozen=True)
class PendingRow:
    """A recipient still to send: how many attempts it already had and when it may go next."""

    customer_id: str
    attempts: int
    next_attempt_at: float | None


@dataclass(frozen=True)
class SeedMark:
    """How far seeding a shard from a named source got: its first `batches` batches (`recipients` ids) are in
    the ledger; `complete` once all are."""

    source: str
    batches: int
    recipients: int
    complete: bool


@dataclass(frozen=True)
class Shard:
    """Which part of a send one task covers: recipients whose stable hash of customer_id is `index` mod `count`."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ConfigError(f"shard {self.index} of {self.count}: the index must be in 0..{self.count - 1}")

    def __str__(self) -> str:
        return f"shard {self.index + 1}/{self.count}"

    def owns(self, customer_id: str) -> bool:
        """True when `customer_id` belongs to this shard: CRC-32 of its UTF-8 bytes modulo `count`, the same
        in every process and on every host (Python's hash() is salted per process)."""
        return self.count == 1 or zlib.crc32(customer_id.encode()) % self.count == self.index


class SendLedger:
    """The ledger of a channel's sends, on SQLite (a file per channel) or the shared Postgres database.

    Thread-safe: every method is one short transaction. Set-based: a claim or an outcome is one
    statement over the ids of a batch, so a 1,000-recipient e-mail request costs two statements.
    """

    def __init__(self, where: str | os.PathLike[str] | Database) -> None:
        self.db = as_database(where)
        self._fences: dict[SendKey, int] = {}  # send -> Postgres backend holding its run lock (run_lock)
        self._seeded: dict[SendKey, int] = {}  # Postgres: rows this process seeded per send, for ANALYZE
        try:
            with self.db.transaction() as tx:
                _migrate_v1(tx, self._schema())
                tx.script(self._schema())
                if "delivery" not in tx.table_columns("sends"):  # a ledger from before delivery outcomes
                    tx.script(self._sql("add_delivery"))
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> SendLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _schema(self) -> str:
        return self._sql("schema").format(table_options=self.db.keyed_table)

    def _sql(self, name: str) -> str:
        return self.db.sql(SQL_DIR, name)

    @contextlib.contextmanager
    def run_lock(self, key: SendKey, shard: Shard = Shard()) -> Iterator[None]:
        """Hold an exclusive lock on this send (or shard) for the whole run: a second live run, on this host or
        (with Postgres) any other, fails fast with LockHeldError.

        Without it, a second process would mistake the first one's `sending` rows for the
        leftovers of a dead run and turn them into `unknown`.
        """
        name = f"send-{key.channel}-{key.campaign}-{key.date}-{shard.index}of{shard.count}"
        with self.db.try_lock(name) as held:
            if not held:
                raise LockHeldError(
                    f"another process is sending {key.channel} for campaign {key.campaign!r} on {key.date} ({shard})"
                )
            if held.session_pid is not None:  # claims check the advisory lock is still this run's
                self._fences[key] = held.session_pid
            try:
                yield
            finally:
                self._fences.pop(key, None)

    # ------------------------------------------------------------------ seeding

    def seed(self, key: SendKey, customer_ids: Iterable[str], shard: int = 0, mark: SeedMark | None = None,
             shards: int = 1) -> int:
        """Add a `pending` row for every recipient not in the ledger yet, and record `mark` (how far seeding got)
        in the same transaction; returns how many rows were added."""
        ids = list(customer_ids)
        now = time.time()
        with self.db.transaction() as tx:
            added = tx.insert_each(self._sql("seed"), {**_key(key), "shard": shard, "now": now}, "customer_id", ids)
            # fresh statistics, or the planner scans the whole send per claim: when the rows this process seeded
            # pass 1,000, 4,000, 16,000, ... (a shard's batches are small: a count per call never got there);
            # an engine that keeps its statistics itself (SQLite) has an empty `analyze` statement
            before = self._seeded.get(key, 0)
            self._seeded[key] = before + added
            analyze = self._sql("analyze")
            if analyze.strip() and _passes_threshold(before, before + added):
                tx.execute(analyze)
            if mark is not None:
                self._put_mark(tx, key, shard, shards, mark)
        return added

    def seeding(self, key: SendKey, shard: Shard) -> SeedMark | None:
        """How far the last seeding of this shard got (None: never seeded with a named source). The first run of a
        send sets its shard count in the same transaction as this check, so of two hosts starting at once with
        different counts, one goes on and the other gets a ConfigError (Postgres serialises the two inserts)."""
        with self.db.transaction() as tx:
            tx.execute(self._sql("send_shards_put"), {**_key(key), "shards": shard.count})
            ((started,),) = tx.rows(self._sql("send_shards_get"), _key(key))
            others = ({row[0] for row in tx.rows(self._sql("seed_shards"), _key(key))} | {started}) - {shard.count}
            if others:  # (the transaction rolls back: this run's count is not recorded)
                first = started if started != shard.count else sorted(others)[0]
                raise ConfigError(
                    f"{key.channel} campaign {key.campaign!r} {key.date} was started with shards = {first}; keep "
                    f"[{key.channel}_campaign] shards = {first} until it is finished (now {shard.count})"
                )
            rows = tx.rows(self._sql("seed_record_get"), {**_key(key), "shard": shard.index})
        return SeedMark(rows[0][0], rows[0][1], rows[0][2], bool(rows[0][3])) if rows else None

    def finish_seeding(self, key: SendKey, shard: Shard, mark: SeedMark) -> None:
        """Record that every recipient of `mark.source` is in the ledger."""
        with self.db.transaction() as tx:
            self._put_mark(tx, key, shard.index, shard.count, mark)

    def _put_mark(self, tx: Tx, key: SendKey, shard: int, shards: int, mark: SeedMark) -> None:
        tx.execute(self._sql("seed_record_put"), {
            **_key(key), "shard": shard, "shards": shards, "source": mark.source, "batches": mark.batches,
            "recipients": mark.recipients, "complete": int(mark.complete), "now": time.time()})

    # ------------------------------------------------------------------ recovery

    def recover_in_flight(self, key: SendKey, shard: int = 0) -> int:
        """Turn rows a dead run of this shard left in `sending` into `unknown`; returns how many."""
        with self.db.transaction() as tx:
            return tx.execute(self._sql("recover_in_flight"), {**_key(key), "shard": shard, "now": time.time()})

    def reopen_unknown(self, key: SendKey, shard: int = 0) -> int:
        """Put `unknown` rows of this shard that were never re-sent back to `pending`, once each; returns how many."""
        with self.db.transaction() as tx:
            return tx.execute(self._sql("reopen_unknown"), {**_key(key), "shard": shard, "now": time.time()})

    # ------------------------------------------------------------------ reading

    def pending_among(self, key: SendKey, customer_ids: Sequence[str]) -> list[PendingRow]:
        """The rows of `customer_ids` still `pending` (one query for a batch of recipients)."""
        with self.db.transaction() as tx:
            return [PendingRow(*row) for row in tx.rows(self._sql("pending_among"),
                                                        {**_key(key), "ids": list(customer_ids)})]

    def counts(self, key: SendKey, shard: int | None = None) -> dict[str, int]:
        """state -> number of rows of this send (or of one shard)."""
        with self.db.transaction() as tx:
            if shard is None:
                return dict(tx.rows(self._sql("counts_send"), _key(key)))
            return dict(tx.rows(self._sql("counts"), {**_key(key), "shard": shard}))

    def states(self, key: SendKey) -> dict[str, str]:
        """customer_id -> state for every row of this send (tests and small reports: it holds every id)."""
        with self.db.transaction() as tx:
            return dict(tx.rows(self._sql("states"), _key(key)))

    def recent_messages(self, key: SendKey, customer_ids: Sequence[str], since: float) -> dict[str, int]:
        """customer_id -> messages on this channel updated since `since` (epoch s) in any campaign and date but
        `key`'s own send (what a frequency cap counts), for the listed customers that have any (one query)."""
        if not customer_ids:
            return {}
        with self.db.transaction() as tx:
            return dict(tx.rows(self._sql("recent_messages"), {**_key(key), "ids": list(customer_ids),
                                                               "since": since}))

    def rows(self, key: SendKey, state: str | None = None) -> list[dict[str, Any]]:
        """Every row of this send (or only those in `state`) as a dict (for reports, reconcile and tests; holds
        raw ids, never log it whole)."""
        with self.db.transaction() as tx:
            if state is None:
                cur_rows = tx.rows(self._sql("rows"), _key(key))
            else:
                cur_rows = tx.rows(self._sql("rows_in_state"), {**_key(key), "state": state})
            names = tx.column_names()
        return [dict(zip(names, row, strict=True)) for row in cur_rows]

    def row_pages(self, key: SendKey, page_rows: int = 20_000) -> Iterator[list[dict[str, Any]]]:
        """Every row of this send as dicts, `page_rows` at a time in customer_id order (exports: memory bounded by
        a page whatever the send's size; each page is its own transaction, so no writer waits on a long read)."""
        after = ""
        while True:
            with self.db.transaction() as tx:
                page = tx.rows(self._sql("rows_page"), {**_key(key), "after": after, "page_rows": page_rows})
                names = tx.column_names()
            if not page:
                return
            yield [dict(zip(names, row, strict=True)) for row in page]
            if len(page) < page_rows:
                return
            after = str(page[-1][names.index("customer_id")])

    def delivery_counts(self, key: SendKey) -> dict[tuple[str, str, str], int]:
        """(delivery, delivery_type, delivery_detail) -> rows of this send ('' where empty; ('', '', '') is every
        row without a reported outcome), one grouped query."""
        with self.db.transaction() as tx:
            return {(d, t, x): int(n) for d, t, x, n in tx.rows(self._sql("delivery_counts"), _key(key))}

    def delivery_pages(self, key: SendKey, page_rows: int = 20_000) -> Iterator[list[tuple[Any, ...]]]:
        """(customer_id, delivery, delivery_type, delivery_detail, delivery_at) of this send's rows that have an
        outcome, `page_rows` at a time in customer_id order (each page its own transaction)."""
        after = ""
        while True:
            with self.db.transaction() as tx:
                page = tx.rows(self._sql("delivery_page"), {**_key(key), "after": after, "page_rows": page_rows})
            if page:
                yield page
            if len(page) < page_rows:
                return
            after = str(page[-1][0])

    # ------------------------------------------------------------------ delivery outcomes

    def apply_outcomes(self, channel: str, outcomes: Sequence[DeliveryOutcome]) -> int:
        """Set each message's delivery outcome where it beats the row's current one (see apply_delivery.sql), in
        one transaction; at most one outcome per message (tasks/channels/delivery.py `latest`). Returns the rows
        changed; an outcome applied again changes none."""
        if not outcomes:
            return 0
        columns: dict[str, list[object]] = {name: [getattr(o, name) for o in outcomes] for name in _OUTCOME_FIELDS}
        columns["cid"] = columns.pop("customer_id")
        with self.db.transaction() as tx:
            return tx.execute_each(self._sql("apply_delivery"), {"channel": channel}, columns)

    # ------------------------------------------------------------------ moving rows

    def claim(self, key: SendKey, customer_ids: Sequence[str], cap: ClaimCap | None = None) -> tuple[list[str],
                                                                                                  list[str]]:
        """Claim rows as mark_sending does, with `cap` counted in the same transaction: (ids claimed, ids capped).
        While run_lock holds an advisory lock, the claim first checks it is still held (LockLostError).

        With a cap, the customers are locked first (Postgres: a transaction advisory lock per customer and channel;
        SQLite: BEGIN IMMEDIATE already serialises every writer of the channel's ledger file), then their
        messages in other sends since `cap.since` are counted, those at `cap.limit` end `capped`, and the
        rest are claimed; a claim of the same customer by another send waits, then counts this one's
        `sending` row."""
        if not customer_ids:
            return [], []
        ids = list(customer_ids)
        capped: list[str] = []
        with self.db.transaction() as tx:
            self._check_fence(tx, key)
            if cap is not None:
                tx.lock_keys(f"{cid}/{key.channel}" for cid in ids)  # each customer on this channel
                counts = dict(tx.rows(self._sql("recent_messages"), {**_key(key), "ids": ids, "since": cap.since}))
                over: dict[int, list[str]] = {}
                for cid in ids:
                    if counts.get(cid, 0) >= cap.limit:
                        over.setdefault(counts.get(cid, 0), []).append(cid)
                for count, group in sorted(over.items()):
                    capped += self._move_in(tx, key, group, f"state = '{CAPPED}', reason = :reason",
                                            {"reason": cap.reason.format(count=count)}, (PENDING,))
                ids = [cid for cid in ids if counts.get(cid, 0) < cap.limit]
            claimed = self._move_in(tx, key, ids, _SENDING, {}, (PENDING,)) if ids else []
        return claimed, capped

    def mark_sending(self, key: SendKey, customer_ids: Sequence[str]) -> list[str]:
        """Claim rows: `pending` -> `sending` with one more attempt, committed before the request goes out.

        Returns the ids this call claimed: a row another process claimed (or finished) first is
        not pending any more, the conditional update skips it, and it must not be sent.
        """
        return self.claim(key, customer_ids)[0]

    def mark_sent(self, key: SendKey, sent: Sequence[tuple[str, str | None]]) -> int:
        """`sending` -> `sent`, with the provider's message id per recipient; returns how many rows moved. Also
        from `unknown`: when another run recovered the row meanwhile (this run lost its lock), the outcome is
        still the truth. A row in any other state keeps it, and the shortfall is logged."""
        if not sent:
            return 0
        params = {**_key(key), "now": time.time()}
        ids, mids = zip(*sent, strict=True)
        with self.db.transaction() as tx:
            moved = tx.execute_each(self._sql("mark_sent"), params, {"cid": ids, "mid": mids})
        if moved < len(sent):
            logger.warning("%s %s %s: %d of %d accepted message(s) found their ledger row already moved on by "
                           "another run (re-sent or settled there); kept as that run left them",
                           key.channel, key.campaign, key.date, len(sent) - moved, len(sent))
        return moved

    def mark_failed(self, key: SendKey, customer_ids: Sequence[str], reason: str) -> None:
        """-> `failed` (final) with the reason; from `sending`, or from `pending` when nothing was sent."""
        self._move(key, customer_ids, "state = 'failed', reason = :reason", {"reason": reason}, (PENDING, SENDING))

    def mark_unknown(self, key: SendKey, customer_ids: Sequence[str], reason: str) -> None:
        """`sending` -> `unknown` (final): the provider may have the message; not re-sent by default."""
        self._move(key, customer_ids, "state = 'unknown', reason = :reason", {"reason": reason}, (SENDING,))

    def mark_retry(self, key: SendKey, customer_ids: Sequence[str], reason: str, next_attempt_at: float) -> None:
        """`sending` -> `pending` after an error known not to have delivered; retried at `next_attempt_at`."""
        self._move(key, customer_ids, "state = 'pending', reason = :reason, next_attempt_at = :due",
                   {"reason": reason, "due": next_attempt_at}, (SENDING,))

    def settle_unknown(self, key: SendKey, customer_id: str, provider_message_id: str | None) -> bool:
        """`unknown` -> `sent` with the provider's id, once its lookup showed the message (reconcile);
        True if this call changed the row."""
        return bool(self._move(key, [customer_id], "state = 'sent', reason = NULL, provider_message_id = :mid",
                               {"mid": provider_message_id}, (UNKNOWN,)))

    def reopen(self, key: SendKey, customer_ids: Sequence[str], reason: str) -> list[str]:
        """`unknown` -> `pending`, once the provider's lookup showed it never got the message (reconcile):
        the next run sends it. Returns the ids this call changed."""
        return self._move(key, customer_ids, "state = 'pending', reason = :reason, next_attempt_at = NULL",
                          {"reason": reason}, (UNKNOWN,))

    def mark_skipped(self, key: SendKey, customer_ids: Sequence[str], state: str, reason: str) -> list[str]:
        """-> a skipped final state (`suppressed`, `capped`, `duplicate_address`) with the reason, from `pending`
        (screened before the request) or `sending` (the provider answered an opt-out)."""
        if state not in SKIPPED_STATES:
            raise ValueError(f"{state!r} is not a skipped state; expected one of {SKIPPED_STATES}")
        return self._move(key, customer_ids, f"state = '{state}', reason = :reason", {"reason": reason},
                          (PENDING, SENDING))

    def hold(self, key: SendKey, customer_ids: Sequence[str], reason: str, until: float | None) -> list[str]:
        """Keep `pending` rows pending until `until` (quiet hours; None: no known time, screened again by the
        next run), with the reason."""
        return self._move(key, customer_ids, "reason = :reason, next_attempt_at = :due",
                          {"reason": reason, "due": until}, (PENDING,))

    def _move(self, key: SendKey, customer_ids: Sequence[str], assignments: str, values: dict[str, object],
              expect: tuple[str, ...]) -> list[str]:
        """Move the listed rows still in one of `expect`, in one statement; returns the ids it changed."""
        if not customer_ids:
            return []
        with self.db.transaction() as tx:
            return self._move_in(tx, key, customer_ids, assignments, values, expect)

    def _move_in(self, tx: Tx, key: SendKey, customer_ids: Sequence[str], assignments: str,
                 values: dict[str, object], expect: tuple[str, ...]) -> list[str]:
        """_move's statement in the open transaction `tx`."""
        sql = self._sql("move").format(assignments=assignments, expect=", ".join(f"'{s}'" for s in expect))
        rows = tx.rows(sql, {**_key(key), **values, "ids": list(customer_ids), "now": time.time()})
        return [row[0] for row in rows]

    def _check_fence(self, tx: Tx, key: SendKey) -> None:
        """While run_lock holds the send's advisory lock: LockLostError once its session is gone (another host
        may recover the send then, and a claim would race it)."""
        fence = self._fences.get(key)
        if fence is not None and not tx.rows(self._sql("lock_held"), {"pid": fence})[0][0]:
            raise LockLostError(
                f"the run lock of the {key.channel} send {key.campaign!r} {key.date} was lost (its database "
                "session ended): stopped before claiming more recipients; re-run the send")


def _passes_threshold(before: int, after: int) -> bool:
    """True when some ANALYZE_FIRST * 4**k lies in (before, after]."""
    threshold = ANALYZE_FIRST
    while threshold <= after:
        if threshold > before:
            return True
        threshold *= 4
    return False


def _migrate_v1(tx: Tx, schema: str) -> None:
    """A ledger of version 1 (SQLite only: no shard column, states fixed by a CHECK constraint): copy its rows
    into today's table, every row in shard 0. The states are the ledger's own literals, so no CHECK is needed."""
    columns_now = tx.table_columns("sends")
    if not columns_now or "shard" in columns_now:
        return
    columns = ("campaign, date, channel, customer_id, state, attempts, unknown_resends, reason, "
               "provider_message_id, next_attempt_at, created_at, updated_at")
    tx.execute("ALTER TABLE sends RENAME TO sends_v1")
    tx.script(schema)
    tx.execute(f"INSERT INTO sends ({columns}) SELECT {columns} FROM sends_v1")
    tx.execute("DROP TABLE sends_v1")


def _key(key: SendKey) -> dict[str, str]:
    return {"campaign": key.campaign, "date": key.date, "channel": key.channel}


def ledger_path(var_dir: str | os.PathLike[str], channel: str) -> Path:
    """<var_dir>/ledger/<channel>.sqlite3: one database per channel, so three sends never share a writer."""
    return Path(var_dir) / "ledger" / f"{channel}.sqlite3"

