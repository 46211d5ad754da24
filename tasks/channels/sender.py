"""The shared sender: rate limit, concurrency, retries and the ledger, for every provider.

`send_campaign` takes the recipients of one channel send (or one shard of it) and a provider
client and brings every recipient to a final ledger state (`sent`, `failed` or `unknown`):

- Recipients are streamed: the source is read batch by batch as request slots free up; each batch
  is seeded into the ledger in bulk (unless a seeding of the same source already put it there),
  then only its still-pending rows are built and queued. Memory holds one batch, the requests
  in flight and the retry queue, never the whole send, and the first request waits for one
  batch, not for the whole ledger.

- `concurrency` threads each take a token from the channel's limiter, commit `sending`, make
  one request and commit its outcome, so the limit (not the provider's latency) sets the
  pace and a crash leaves nothing ambiguous except rows in `sending`.
- A retriable error known not to have delivered (connect failure, 429, most 5xx) puts the
  recipients back to `pending` with a due time; a dispatcher re-queues them when due, so a
  300 s retry delay never holds up other recipients. The delay is `retry_delay` (doubled
  per attempt with `backoff`), or the provider's Retry-After when that is longer.
- A retriable error that may have delivered (read timeout, connection dropped after the
  request was written, 502/504) becomes `unknown` at once: retrying it could message the
  customer twice, and none of our providers has an idempotency key (a client that has one
  sets `idempotent = True`, and then it is retried like the others).
- Permanent errors become `failed` with the reason; an auth error stops the whole send and
  leaves the remaining recipients `pending` for a later run. An opt-out answer (OptedOutError:
  Twilio 21610, FCM UNREGISTERED) makes the recipient `suppressed` and is reported to the screen.
- A `screen` (tasks/channels/screen.py), when given, is asked about each request's recipients
  (one call per batch, so its lookups are set-based) just before the request and again once the
  limiter's token is in hand: it may skip a recipient (a skipped final state: `suppressed`,
  `capped`, `duplicate_address`) or hold it (quiet hours: it stays `pending` and is queued again
  for when it may go, like a retry, unless that is more than `max_hold_hours` after the start;
  such recipients stay pending for the next run).
- Time comes from a `clock` (tasks/channels/screen.py), so tests control it.

Reads no luigi.cfg section: tasks/campaign/sends.py builds the policy from the config.
"""

from __future__ import annotations

import collections
import datetime
import heapq
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

from tasks.channels.base import Message, ProviderClient
from tasks.channels.ledger import (
    CAPPED,
    FAILED,
    FINAL_STATES,
    PENDING,
    SENDING,
    SENT,
    SKIPPED_STATES,
    SUPPRESSED,
    UNKNOWN,
    SeedMark,
    SendKey,
    SendLedger,
    Shard,
)
from tasks.channels.screen import SYSTEM_CLOCK, Clock, Hold, Screen, Skip
from tasks.errors import AuthApiError, FatalApiError, OptedOutError, RetriableApiError

if TYPE_CHECKING:  # pyrate_limiter is loaded where a limiter is made, not by `import tasks` or `status`
    from tasks.channels.limiter import ChannelLimiter

logger = logging.getLogger(__name__)

MAX_LOGGED_FAILURES = 20
WHOLE_SEND = Shard()  # a send not split into shards


@dataclass(frozen=True)
class Recipient:
    """One customer to message: `address` is PII (mask it in logs); `fields` feed the template."""

    customer_id: str
    address: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class SendPolicy:
    """How to send: concurrency, retries, and how often to report progress."""

    concurrency: int = 8
    max_attempts: int = 2
    retry_delay: float = 300.0
    backoff: bool = False
    resend_unknown: bool = False
    progress_interval: float = 2.0
    log_interval: float = 5.0
    max_hold_hours: float = 12.0  # recipients held for longer than this after the start wait for the next run

    def delay_after(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before the next attempt after `attempts` failed ones."""
        delay = self.retry_delay * (2 ** (attempts - 1) if self.backoff else 1)
        return max(delay, retry_after or 0.0)


@dataclass(frozen=True)
class Progress:
    """A snapshot for the Luigi shell: counts by final state, the recent message rate, and the
    recipients held for quiet hours (with the earliest and latest time they may go, epoch s)."""

    target: int
    counts: Mapping[str, int]
    remaining: int
    rate: float
    elapsed: float
    held: int = 0
    held_until: tuple[float, float] | None = None

    @property
    def sent(self) -> int:
        return self.counts.get(SENT, 0)

    @property
    def failed(self) -> int:
        return self.counts.get(FAILED, 0)

    @property
    def unknown(self) -> int:
        return self.counts.get(UNKNOWN, 0)

    @property
    def done_fraction(self) -> float:
        return 1.0 if self.target == 0 else (self.target - self.remaining) / self.target

    def __str__(self) -> str:
        skipped = "".join(f", {self.counts[s]} {s}" for s in SKIPPED_STATES if self.counts.get(s))
        text = (
            f"{self.sent} sent, {self.failed} failed, {self.unknown} unknown{skipped}, {self.remaining} remaining "
            f"of {self.target}; {self.rate:.1f} msg/s"
        )
        if self.held:
            text += f"; {self.held} held for quiet hours"
            if self.held_until:
                first, last = (_utc(t) for t in self.held_until)
                text += f" until {first}" if first == last else f" until {first} to {last}"
        return text


@dataclass
class SendResult:
    """The outcome of one channel send (the Luigi task writes it as its result JSON)."""

    campaign: str
    date: str
    channel: str
    provider: str
    target: int
    counts: dict[str, int]
    duration_s: float
    messages_sent_this_run: int
    requests: int
    achieved_rate: float
    achieved_request_rate: float
    configured_rate: float
    burst: int
    retries: int
    recovered_unknown: int
    reopened_unknown: int
    complete: bool
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def failed_share(self) -> float:
        return 0.0 if self.target == 0 else self.counts.get(FAILED, 0) / self.target

    def as_dict(self) -> dict[str, object]:
        payload = asdict(self)
        payload["unknown"] = self.counts.get(UNKNOWN, 0)
        payload["failed_share"] = round(self.failed_share, 6)
        return payload


@dataclass
class _Batch:
    recipients: list[Recipient]
    attempts: int


@dataclass
class _Outcome:
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    requests: int = 0
    retry_in: float | None = None
    retry: list[Recipient] = field(default_factory=list)
    abort: BaseException | None = None
    skipped: collections.Counter = field(default_factory=collections.Counter)
    held: list[tuple[Recipient, float | None]] = field(default_factory=list)


@dataclass(frozen=True)
class SourceBatch:
    """One batch of a source: its customer ids, and how to build the recipients among some of them (only the
    still-pending ones are ever built, so a re-run over a mostly finished send stays cheap)."""

    ids: list[str]
    build: Callable[[set[str]], list[Recipient]]


class RecipientSource(Protocol):
    """Where a send's recipients come from, read in batches so memory never holds them all.

    `source` names the exact input (file content, filters, shard): seeding records how many of its
    batches are in the ledger, so a re-run skips them. None: seed every batch on every run.
    """

    source: str | None

    def batches(self) -> Iterator[SourceBatch]:
        """The recipients in batches, the same batches in the same order on every call."""
        ...


class ListSource:
    """Recipients already in memory (tests, small sends)."""

    source = None

    def __init__(self, recipients: Iterable[Recipient], batch: int = 10_000):
        self.recipients = list(recipients)
        self.batch = batch

    def batches(self) -> Iterator[SourceBatch]:
        for start in range(0, len(self.recipients), self.batch):
            chunk = self.recipients[start:start + self.batch]
            yield SourceBatch([r.customer_id for r in chunk],
                              lambda keep, chunk=chunk: [r for r in chunk if r.customer_id in keep])


def send_campaign(
    key: SendKey,
    recipients: RecipientSource | Sequence[Recipient],
    render: Callable[[Recipient], dict[str, str]],
    client: ProviderClient,
    limiter: ChannelLimiter,
    ledger: SendLedger,
    policy: SendPolicy,
    progress: Callable[[Progress], None] | None = None,
    mask: Callable[[str], str] = lambda _: "***",
    shard: Shard = WHOLE_SEND,
    screen: Screen | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> SendResult:
    """Send to every recipient of `shard` not final in the ledger yet; returns the counts of the shard."""
    with ledger.run_lock(key, shard):
        return _Run(key, recipients, render, client, limiter, ledger, policy, progress, mask, shard, screen,
                    clock).run()


class _Run:
    """One pass of the sender over a send's (or a shard's) pending recipients, streamed in batches."""

    def __init__(self, key, recipients, render, client, limiter, ledger, policy, progress, mask, shard=WHOLE_SEND,
                 screen=None, clock=SYSTEM_CLOCK):
        self.key: SendKey = key
        self.source: RecipientSource = recipients if hasattr(recipients, "batches") else ListSource(recipients)
        self.render = render
        self.client: ProviderClient = client
        self.limiter: ChannelLimiter = limiter
        self.ledger: SendLedger = ledger
        self.policy: SendPolicy = policy
        self.progress = progress
        self.mask = mask
        self.shard: Shard = shard
        self.aborting = threading.Event()
        self.logged_failures = 0
        self.log_lock = threading.Lock()
        self.counts = collections.Counter()
        self.requests = 0
        self.retries = 0
        self.recent: collections.deque[tuple[float, int]] = collections.deque()
        self.added = 0  # ledger rows this run seeded
        self.delayed: list = []  # (monotonic due, tie-breaker, _Batch): retries, and rows waiting for a due time
        self.screen: Screen | None = screen
        self.clock: Clock = clock
        self.held: dict[str, float | None] = {}  # customer_id -> when it may go (None: no known time)
        self.horizon = clock.time() + policy.max_hold_hours * 3600  # holds past this wait for the next run

    def run(self) -> SendResult:
        start = self.clock.monotonic()
        key, ledger, shard = self.key, self.ledger, self.shard
        mark = ledger.seeding(key, shard)
        named = self.source.source
        same = mark is not None and named is not None and mark.source == named
        self.skip_batches = mark.batches if same else 0  # already seeded from this very source
        self.seeded_all = same and mark.complete
        recovered = ledger.recover_in_flight(key, shard.index)
        reopened = ledger.reopen_unknown(key, shard.index) if self.policy.resend_unknown else 0
        if recovered:
            logger.warning("%s: %d recipient(s) were in flight when a previous run stopped: now unknown, "
                           "not re-sent%s", self._label(), recovered,
                           "" if self.policy.resend_unknown else " (resend_unknown = false)")
        if reopened:
            logger.warning("%s: re-sending %d unknown recipient(s) once (resend_unknown = true)",
                           self._label(), reopened)
        self.initial = collections.Counter(ledger.counts(key, shard.index))
        to_send = self.initial[PENDING]
        logger.info("%s via %s: %d target, %d to send (%s), limit %s, concurrency %d", self._label(),
                    self.client.provider, sum(self.initial.values()), to_send, _fmt_counts(self.initial),
                    self.limiter, self.policy.concurrency)
        if to_send or not self.seeded_all:  # seeding goes with sending: the first request waits for one batch
            self._dispatch(self._feed(), start)
        duration = self.clock.monotonic() - start
        final = ledger.counts(key, shard.index)
        counts = {state: final.get(state, 0) for state in (PENDING, SENDING, *FINAL_STATES)}
        sent_now = self.counts[SENT]
        result = SendResult(
            campaign=key.campaign, date=key.date, channel=key.channel, provider=self.client.provider,
            target=sum(final.values()), counts=counts, duration_s=round(duration, 3),
            messages_sent_this_run=sent_now, requests=self.requests,
            achieved_rate=round(sent_now / duration, 3) if duration > 0 else 0.0,
            achieved_request_rate=round(self.requests / duration, 3) if duration > 0 else 0.0,
            configured_rate=self.limiter.rate, burst=self.limiter.burst, retries=self.retries,
            recovered_unknown=recovered, reopened_unknown=reopened,
            complete=counts[PENDING] == 0 and counts[SENDING] == 0,
        )
        result.extra.update({"shard": shard.index, "shards": shard.count, "seeded_this_run": self.added})
        if self.held:  # still pending: held past max_hold_hours, or with no known time
            times = [t for t in self.held.values() if t is not None]
            result.extra["held"] = len(self.held)
            result.extra["held_without_time"] = len(self.held) - len(times)
            result.extra["held_until"] = [_utc(min(times)), _utc(max(times))] if times else None
        logger.info("%s done in %.1f s: %s; %.1f msg/s (%.1f req/s, limit %g/s)", self._label(), duration,
                    _fmt_counts(counts), result.achieved_rate, result.achieved_request_rate, self.limiter.rate)
        return result

    def _label(self) -> str:
        shard = f" {self.shard}" if self.shard.count > 1 else ""
        return f"{self.key.channel} campaign {self.key.campaign!r} {self.key.date}{shard}"

    def _feed(self) -> Iterator[_Batch]:
        """Request-sized batches of the recipients still pending, read batch by batch from the source.

        Each source batch not seeded yet is seeded first (one transaction, which also records how far
        seeding got, so a restart after a crash skips what is in). Up to batch_size recipients per
        request, no address twice in one request; rows whose retry is not due yet go to the delayed
        queue instead.
        """
        named, number, total = self.source.source, 0, 0
        for number, batch in enumerate(self.source.batches(), 1):
            if self.aborting.is_set():
                return
            total += len(batch.ids)
            if not self.seeded_all and number > self.skip_batches:
                mark = None if named is None else SeedMark(named, number, total, complete=False)
                self.added += self.ledger.seed(self.key, batch.ids, self.shard.index, mark, self.shard.count)
            pending = self.ledger.pending_among(self.key, batch.ids)
            if not pending:
                continue
            by_id = {r.customer_id: r for r in batch.build({row.customer_id for row in pending})}
            pending.sort(key=lambda row: (row.attempts, row.next_attempt_at or 0.0, row.customer_id))
            now_wall, now_mono = self.clock.time(), self.clock.monotonic()
            for (attempts, due), rows in itertools.groupby(pending, key=lambda r: (r.attempts, r.next_attempt_at)):
                group: list[Recipient] = []
                seen: set[str] = set()
                for row in rows:
                    recipient = by_id[row.customer_id]
                    if len(group) >= self.client.batch_size or recipient.address in seen:
                        yield from self._due(_Batch(group, attempts), due, now_wall, now_mono)
                        group, seen = [], set()
                    group.append(recipient)
                    seen.add(recipient.address)
                if group:
                    yield from self._due(_Batch(group, attempts), due, now_wall, now_mono)
        if named is not None and not self.seeded_all:
            self.ledger.finish_seeding(self.key, self.shard, SeedMark(named, number, total, complete=True))

    def _due(self, batch: _Batch, due_wall: float | None, now_wall: float, now_mono: float) -> Iterator[_Batch]:
        if due_wall is None or due_wall <= now_wall:
            yield batch
        elif due_wall > self.horizon:  # held past max_hold_hours by an earlier run: left for a later one
            self.held.update((r.customer_id, due_wall) for r in batch.recipients)
        else:
            heapq.heappush(self.delayed, (now_mono + due_wall - now_wall, id(batch), batch))

    def _dispatch(self, feed: Iterator[_Batch], start: float) -> None:
        """Keep `concurrency` requests in flight, pulling batches from `feed` only as slots free up (so
        memory holds the in-flight and retry-queued recipients, never the whole send)."""
        policy, delayed = self.policy, self.delayed
        abort: BaseException | None = None
        next_progress = start + policy.progress_interval
        next_log = start + policy.log_interval
        fed_all = False
        with ThreadPoolExecutor(max_workers=policy.concurrency, thread_name_prefix=f"send-{self.key.channel}") as pool:
            running: dict[Future[_Outcome], _Batch] = {}
            while not (fed_all and not delayed and not running) and not (abort and not running):
                now = self.clock.monotonic()
                while abort is None and len(running) < policy.concurrency:
                    if delayed and delayed[0][0] <= now:
                        batch = heapq.heappop(delayed)[2]
                    elif not fed_all:
                        batch = next(feed, None)
                        if batch is None:
                            fed_all = True
                            continue
                    else:
                        break
                    running[pool.submit(self._attempt, batch)] = batch
                if abort is not None and not running:
                    break
                wake = min(next_progress, delayed[0][0] if delayed else next_progress)
                if not running:  # only delayed work (retries, holds): sleep until it is due
                    self.clock.sleep(wake - self.clock.monotonic())
                    done = set()
                else:
                    done, _ = wait(running, timeout=max(0.01, wake - self.clock.monotonic()),
                                   return_when=FIRST_COMPLETED)
                for future in done:
                    batch = running.pop(future)
                    outcome = future.result()  # _attempt catches provider errors; anything else is a bug
                    self._count(outcome, batch)
                    self._requeue_held(outcome, batch)
                    if outcome.abort is not None and abort is None:
                        abort = outcome.abort
                        self.aborting.set()
                    if outcome.retry_in is not None:
                        self.retries += 1
                        retry = _Batch(outcome.retry, batch.attempts + 1)
                        heapq.heappush(delayed, (self.clock.monotonic() + outcome.retry_in, id(retry), retry))
                now = self.clock.monotonic()
                if now >= next_progress:
                    next_progress = now + policy.progress_interval
                    self._report(start, now, log=now >= next_log)
                    if now >= next_log:
                        next_log = now + policy.log_interval
            self._report(start, self.clock.monotonic(), log=False)
        if abort is not None:
            raise abort

    def _requeue_held(self, outcome: _Outcome, batch: _Batch) -> None:
        """Queue the recipients a screen held for when they may go (within max_hold_hours), like a retry."""
        now_wall, now_mono = self.clock.time(), self.clock.monotonic()
        for recipient, until in outcome.held:
            self.held[recipient.customer_id] = until
            if until is not None and until <= self.horizon:
                later = _Batch([recipient], batch.attempts)
                heapq.heappush(self.delayed, (now_mono + max(0.0, until - now_wall), id(later), later))

    def _screened(self, recipients: Sequence[Recipient], outcome: _Outcome, again: bool = False) -> list[Recipient]:
        """The recipients the screen lets go now (`again`: its re-check with the token in hand); the others are
        skipped (final) or held (pending). One screen call, and one ledger statement per distinct verdict."""
        if self.screen is None or not recipients:
            return list(recipients)
        verdicts = (self.screen.recheck if again else self.screen.check)(recipients)
        if not verdicts:
            return list(recipients)
        grouped: dict[Skip | Hold, list[Recipient]] = collections.defaultdict(list)
        for recipient in recipients:
            verdict = verdicts.get(recipient.customer_id)
            if verdict is not None:
                grouped[verdict].append(recipient)
        for verdict, group in grouped.items():
            ids = [r.customer_id for r in group]
            if isinstance(verdict, Skip):
                moved = set(self.ledger.mark_skipped(self.key, ids, verdict.state, verdict.reason))
                outcome.skipped[verdict.state] += len(moved)
            else:  # the row keeps the time for a later run; without one (None) a later run screens it again
                self.ledger.hold(self.key, ids, verdict.reason, verdict.until)
                outcome.held += [(r, verdict.until) for r in group]
        return [r for r in recipients if r.customer_id not in verdicts]

    def _attempt(self, batch: _Batch) -> _Outcome:
        """One request for one batch (runs in a pool thread); returns what happened."""
        outcome = _Outcome()
        messages: list[Message] = []
        by_id = {r.customer_id: r for r in batch.recipients}
        for recipient in self._screened(batch.recipients, outcome):
            message, reason = self._message(recipient)
            if reason is not None:
                self.ledger.mark_failed(self.key, [recipient.customer_id], reason)
                self._log_failure(recipient, reason)
                outcome.failed += 1
            else:
                messages.append(message)
        if not messages:
            return outcome
        self.limiter.acquire()
        if self.aborting.is_set():
            return outcome  # the rows stay pending for the next run
        if self.screen is not None:  # again with the token in hand: a suppression added meanwhile counts
            still = {r.customer_id for r in self._screened([by_id[m.customer_id] for m in messages], outcome,
                                                           again=True)}
            messages = [m for m in messages if m.customer_id in still]
            if not messages:
                return outcome
        # the frequency cap counted again in the claim, with the customers locked: another campaign may have
        # claimed one of them since the screen's check
        ids, capped = self.ledger.claim(self.key, [m.customer_id for m in messages],
                                        self.screen.claim_cap() if self.screen is not None else None)
        outcome.skipped[CAPPED] += len(capped)
        taken = len(messages) - len(ids) - len(capped)
        if taken:  # another process claimed (or finished) these first: never send them
            logger.warning("%s: %d recipient(s) were claimed by another process; not sent by this one",
                           self._label(), taken)
        if len(ids) < len(messages):
            mine = set(ids)
            messages = [m for m in messages if m.customer_id in mine]
            if not messages:
                return outcome
        outcome.requests = 1
        attempts = batch.attempts + 1
        try:
            provider_ids = self.client.send(messages)
        except AuthApiError as exc:
            self.ledger.mark_retry(self.key, ids, str(exc), self.clock.time())
            outcome.abort = exc
        except OptedOutError as exc:
            outcome.skipped[SUPPRESSED] += len(self.ledger.mark_skipped(self.key, ids, SUPPRESSED, str(exc)))
            if self.screen is not None:
                for message in messages:
                    self.screen.opted_out(message, str(exc))
        except FatalApiError as exc:
            self.ledger.mark_failed(self.key, ids, str(exc))
            for recipient in batch.recipients[:3]:
                self._log_failure(recipient, str(exc))
            outcome.failed += len(ids)
        except RetriableApiError as exc:
            if exc.maybe_delivered and not self.client.idempotent:
                self.ledger.mark_unknown(self.key, ids, f"{exc}: may have been delivered, not retried")
                outcome.unknown += len(ids)
            elif attempts >= self.policy.max_attempts:
                if exc.maybe_delivered:
                    self.ledger.mark_unknown(self.key, ids, f"{exc}: may have been delivered; {attempts} attempts")
                    outcome.unknown += len(ids)
                else:
                    self.ledger.mark_failed(self.key, ids, f"gave up after {attempts} attempt(s): {exc}")
                    outcome.failed += len(ids)
            else:
                delay = self.policy.delay_after(attempts, exc.retry_after)
                self.ledger.mark_retry(self.key, ids, str(exc), self.clock.time() + delay)
                outcome.retry_in = delay
                claimed = set(ids)
                outcome.retry = [r for r in batch.recipients if r.customer_id in claimed]
        except BaseException as exc:
            # A bug or an interrupt mid-request: the provider may have the message.
            self.ledger.mark_unknown(self.key, ids, f"unexpected {type(exc).__name__} during the request")
            raise
        else:
            self.ledger.mark_sent(self.key, list(zip(ids, provider_ids, strict=True)))
            outcome.sent += len(ids)
        return outcome

    def _message(self, recipient: Recipient) -> tuple[Message | None, str | None]:
        try:
            content = self.render(recipient)
        except FatalApiError as exc:
            return None, str(exc)
        message = Message(recipient.customer_id, recipient.address, self.key.send_id(recipient.customer_id), content)
        return message, self.client.reject_reason(message)

    def _log_failure(self, recipient: Recipient, reason: str) -> None:
        with self.log_lock:
            self.logged_failures += 1
            if self.logged_failures <= MAX_LOGGED_FAILURES:
                logger.warning("%s: customer %s (%s) failed: %s", self._label(), recipient.customer_id,
                               self.mask(recipient.address), reason)
            elif self.logged_failures == MAX_LOGGED_FAILURES + 1:
                logger.warning("%s: more failures; not logging each one (see the ledger)", self._label())

    def _count(self, outcome: _Outcome, batch: _Batch) -> None:
        self.counts[SENT] += outcome.sent
        self.counts[FAILED] += outcome.failed
        self.counts[UNKNOWN] += outcome.unknown
        self.counts.update(outcome.skipped)
        self.requests += outcome.requests
        if outcome.sent:
            self.recent.append((self.clock.monotonic(), outcome.sent))
        if self.held:
            held_now = {r.customer_id for r, _ in outcome.held}
            for recipient in batch.recipients:  # held before, not any more: it went, or was skipped
                if recipient.customer_id not in held_now:
                    self.held.pop(recipient.customer_id, None)

    def _report(self, start: float, now: float, log: bool) -> None:
        window = 5.0
        while self.recent and self.recent[0][0] < now - window:
            self.recent.popleft()
        span = min(window, max(now - start, 1e-3))
        rate = sum(n for _, n in self.recent) / span
        target = sum(self.initial.values()) + self.added
        done = {state: self.initial[state] + self.counts[state] for state in FINAL_STATES}
        times = [t for t in self.held.values() if t is not None]
        snapshot = Progress(target, done, target - sum(done.values()), rate, now - start, len(self.held),
                            (min(times), max(times)) if times else None)
        if log:
            logger.info("%s: %s", self._label(), snapshot)
        if self.progress is not None:
            try:
                self.progress(snapshot)
            except Exception:  # noqa: BLE001 - a progress display must never stop a send
                logger.warning("%s: progress callback failed", self._label(), exc_info=True)


def _utc(epoch: float) -> str:
    """An epoch time as `YYYY-MM-DD HH:MM UTC` for progress messages and the result file."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _fmt_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in (PENDING, SENDING, *FINAL_STATES) if counts.get(s, 0))
